"""Where a number was measured: hardware, limits, software versions, container, commit.

Every result carries this fingerprint because a latency or an epoch time means nothing
without the machine it came from. Container limits matter most: a CPU quota (cgroup) is
invisible to os.cpu_count() and psutil, so they are read from the cgroup files directly.
Nothing here may fail a run: every probe degrades to None.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

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

# Kernels report "no memory limit" as a huge page-aligned number near 2**63.
_UNLIMITED_BYTES = 2**62
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


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _self_cgroup_paths(proc_cgroup: Path) -> dict[str, str]:
    """Map controller ("cpu", "memory"; "" for v2) -> this process's path in that hierarchy."""
    paths: dict[str, str] = {}
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2]
    return paths


def _candidate_dirs(base: Path, self_path: str | None) -> list[Path]:
    """The controller dir and every ancestor of our own cgroup beneath it (limits nest)."""
    dirs = [base]
    current = base
    for part in (self_path or "").strip("/").split("/"):
        if not part:
            continue
        current = current / part
        if not current.is_dir():
            break
        dirs.append(current)
    return dirs


def _min_or_none(values: list[float | int | None]) -> Any:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _parse_bytes(text: str | None) -> int | None:
    if text is None or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 < value < _UNLIMITED_BYTES else None


def _v1_cpu_quota(directory: Path) -> float | None:
    try:
        quota = int(_read(directory / "cpu.cfs_quota_us") or "")
        period = int(_read(directory / "cpu.cfs_period_us") or "")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v2_cpu_quota(directory: Path) -> float | None:
    fields = (_read(directory / "cpu.max") or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_controller_dir(root: Path, name: str) -> Path | None:
    """v1 mounts cpu as "cpu", "cpu,cpuacct" or "cpuacct,cpu" depending on the distribution."""
    for entry in (name, f"{name},cpuacct", f"cpuacct,{name}"):
        if (root / entry).is_dir():
            return root / entry
    return None


def cgroup_limits(
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
    *,
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
) -> CgroupLimits:
    """CPU quota (cores) and memory limit of this process's cgroup, v1 or v2."""
    base = Path(root)
    own = _self_cgroup_paths(Path(proc_cgroup))
    if (base / "cgroup.controllers").is_file():
        dirs = _candidate_dirs(base, own.get(""))
        return CgroupLimits(
            cpu_quota_cores=_min_or_none([_v2_cpu_quota(d) for d in dirs]),
            memory_bytes=_min_or_none([_parse_bytes(_read(d / "memory.max")) for d in dirs]),
            version=2,
        )
    cpu_dir = _v1_controller_dir(base, "cpu")
    mem_dir = base / "memory" if (base / "memory").is_dir() else None
    if cpu_dir is None and mem_dir is None:
        return CgroupLimits(cpu_quota_cores=None, memory_bytes=None, version=None)
    quota = None
    if cpu_dir is not None:
        quota = _min_or_none([_v1_cpu_quota(d) for d in _candidate_dirs(cpu_dir, own.get("cpu"))])
    memory = None
    if mem_dir is not None:
        memory = _min_or_none(
            [
                _parse_bytes(_read(d / "memory.limit_in_bytes"))
                for d in _candidate_dirs(mem_dir, own.get("memory"))
            ]
        )
    return CgroupLimits(cpu_quota_cores=quota, memory_bytes=memory, version=1)


def _inactive_file(directory: Path) -> int:
    for line in (_read(directory / "memory.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key in ("inactive_file", "total_inactive_file") and value.isdigit():
            return int(value)
    return 0


def memory_room(
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
    *,
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
) -> int | None:
    """Bytes this process's memory budget still has: the tightest cgroup limit less what the
    cgroup uses now (v2 memory.max/memory.current, v1 limit_in_bytes/usage_in_bytes), else
    the host's available memory; None when neither can be read."""
    base = Path(root)
    own = _self_cgroup_paths(Path(proc_cgroup))
    if (base / "cgroup.controllers").is_file():
        pairs = [("memory.max", "memory.current", d) for d in _candidate_dirs(base, own.get(""))]
    elif (base / "memory").is_dir():
        dirs = _candidate_dirs(base / "memory", own.get("memory"))
        pairs = [("memory.limit_in_bytes", "memory.usage_in_bytes", d) for d in dirs]
    else:
        pairs = []
    rooms = []
    for limit_file, usage_file, directory in pairs:
        limit = _parse_bytes(_read(directory / limit_file))
        usage = _parse_bytes(_read(directory / usage_file))
        if limit is not None and usage is not None:
            # page cache the kernel drops before it kills anything is room too (docker stats
            # subtracts it the same way)
            rooms.append(max(0, limit - usage + _inactive_file(directory)))
    if rooms:
        return min(rooms)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def _affinity_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def usable_cpus(limits: CgroupLimits | None = None) -> int:
    """CPUs this process may really use: affinity capped by the cgroup quota, at least 1."""
    limits = limits if limits is not None else cgroup_limits()
    count = _affinity_count()
    if limits.cpu_quota_cores is not None:
        count = min(count, math.ceil(limits.cpu_quota_cores))
    return max(1, count)


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
    for line in (_read(cpuinfo) or "").splitlines():
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
        affinity_cores=_affinity_count(),
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
        return GpuInfo(error=f"{type(exc).__name__}: {exc}")


def _in_container() -> bool:
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        return True
    hints = ("docker", "kubepods", "containerd", "libpod", "lxc")
    return any(h in (_read(Path("/proc/1/cgroup")) or "") for h in hints)


def _git_commit() -> str | None:
    """Given, else the checkout's, else the one an image was built from (docker/Dockerfile)."""
    env = os.environ.get("RESNEST_BENCH_GIT_COMMIT")
    if env:
        return env
    commit = _run(["git", "rev-parse", "HEAD"], cwd=_REPO_DIR)
    if commit:
        return commit
    baked = os.environ.get("RESNEST_BENCH_GIT_COMMIT_FILE")
    return (_read(Path(baked)) or None) if baked else None


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
