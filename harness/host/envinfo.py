"""Where a number was measured: hardware, limits, software versions, container, commit.

Every result carries this fingerprint because a latency or an epoch time means nothing
without the machine it came from. Container limits matter most: a CPU quota (cgroup) is
invisible to os.cpu_count() and psutil, so they are read from the cgroup files directly.
Nothing here may fail a run: every probe degrades to None.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from resnest_bench.harness.errors import one_line
from resnest_bench.harness.host.cgroups import (
    affinity_count,
    cgroup_limits,
    read_probe,
    usable_cpus,
)
from resnest_bench.harness.results.environment import (
    CgroupLimits,
    ContainerInfo,
    CpuInfo,
    Environment,
    GpuInfo,
    MemoryInfo,
    PlatformInfo,
    PythonInfo,
    Versions,
)

# CPU features that decide which kernels (int8 VNNI, bf16, AMX) a runtime can use.
_ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "neon",
    "asimddp",
)
_PROBE_TIMEOUT_S = 5.0
_REPO_DIR = Path(__file__).resolve().parents[2]


def peak_rss_bytes() -> int:
    """Peak resident set size of this process in bytes."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes.
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024
    except ImportError:  # Windows
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))


def _cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """Model name, ISA flags, vendor, family and clock of the first CPU listed (what a peak
    estimate needs: harness.host.peak)."""
    fields: dict[str, str] = {}
    for line in (read_probe(cpuinfo) or "").splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or fields.get("Hardware") or fields.get("cpu model")
    family, mhz = fields.get("cpu family", ""), fields.get("cpu MHz", "")
    return {
        "model": model or platform.processor() or None,
        "isa_flags": [f for f in _ISA_FLAGS if f in (fields.get("flags") or "").split()]
        or [f for f in _ISA_FLAGS if f in (fields.get("Features") or "").split()],
        "vendor": fields.get("vendor_id") or None,
        "family": int(family) if family.isdigit() else None,
        "mhz": float(mhz) if mhz.replace(".", "", 1).isdigit() else None,
    }


def cpu_info(limits: CgroupLimits | None = None) -> CpuInfo:
    """This machine's CPU: name, ISA flags, vendor, family, clock and the cores usable here."""
    return CpuInfo(
        **_cpu_info(),
        logical_cores=os.cpu_count(),
        affinity_cores=affinity_count(),
        usable_cpus=usable_cpus(limits),
    )


def isa_flags() -> list[str]:
    """The instruction-set extensions that decide kernels (VNNI for int8, AVX-512, AMX...)."""
    return _cpu_info()["isa_flags"]


def bf16_missing() -> str | None:
    """Why this CPU cannot run bf16 natively (no AVX512_BF16, no AMX), or None when it can:
    elsewhere bf16 is emulated and slower than fp32, so bf16 targets are skipped."""
    flags = set(isa_flags())
    if flags & {"avx512_bf16", "amx_tile"}:
        return None
    return "this CPU has no AVX512_BF16 or AMX: bf16 would be emulated, slower than fp32"


def cpu_model() -> str | None:
    """The CPU's marketing name (e.g. 'AMD EPYC 7B13'), where the OS tells it."""
    return _cpu_info()["model"]


def _module_version(name: str) -> tuple[Any, str | None]:
    try:
        module = importlib.import_module(name)
    except Exception:  # a broken install must not break the fingerprint
        return None, None
    return module, getattr(module, "__version__", None)


def _versions() -> Versions:
    ort, ort_version = _module_version("onnxruntime")
    providers = None
    if ort is not None:
        with contextlib.suppress(Exception):
            providers = list(ort.get_available_providers())
    return Versions(
        **{name: _module_version(name)[1] for name in ("torch", "numpy", "onnx")},
        onnxruntime=ort_version,
        onnxruntime_providers=providers,
    )


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _driver_version(index: int) -> str | None:
    try:
        import pynvml  # shipped by the nvidia-ml-py package

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        pass
    out = _run(
        ["nvidia-smi", f"--id={index}", "--query-gpu=driver_version", "--format=csv,noheader"]
    )
    return out.splitlines()[0].strip() if out else None


def _gpu_info(device: str) -> GpuInfo | None:
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        dev = torch.device(device)
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return GpuInfo(
            index=index,
            name=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            total_memory_bytes=int(props.total_memory),
            count=torch.cuda.device_count(),
            driver_version=_driver_version(index),
            cuda_version=torch.version.cuda,
            cudnn_version=torch.backends.cudnn.version(),
        )
    except Exception as exc:  # report what went wrong rather than fail the run
        return GpuInfo(error=one_line(exc))


def _in_container() -> bool:
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        return True
    hints = ("docker", "kubepods", "containerd", "libpod", "lxc")
    return any(h in (read_probe(Path("/proc/1/cgroup")) or "") for h in hints)


def _git_commit() -> str | None:
    """Given, else the checkout's, else the one an image was built from (docker/Dockerfile)."""
    env = os.environ.get("RESNEST_BENCH_GIT_COMMIT")
    if env:
        return env
    commit = _run(["git", "rev-parse", "HEAD"], cwd=_REPO_DIR)
    if commit:
        return commit
    baked = os.environ.get("RESNEST_BENCH_GIT_COMMIT_FILE")
    return (read_probe(Path(baked)) or None) if baked else None


def _host_memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        return None


def fingerprint(*, device: str = "cpu") -> Environment:
    """The machine, limits and software this run used."""
    limits = cgroup_limits()
    return Environment(
        python=PythonInfo(
            version=platform.python_version(),
            implementation=platform.python_implementation(),
            executable=sys.executable,
        ),
        platform=PlatformInfo(
            system=platform.system(),
            release=platform.release(),
            machine=platform.machine(),
            platform=platform.platform(),
        ),
        cpu=cpu_info(limits),
        memory=MemoryInfo(host_total_bytes=_host_memory_bytes()),
        cgroup=limits,
        versions=_versions(),
        device=device,
        gpu=_gpu_info(device),
        container=ContainerInfo(
            image=os.environ.get("RESNEST_BENCH_IMAGE"),
            tag=os.environ.get("RESNEST_BENCH_IMAGE_TAG"),
            in_container=_in_container(),
        ),
        git_commit=_git_commit(),
        argv=list(sys.argv),
    )
