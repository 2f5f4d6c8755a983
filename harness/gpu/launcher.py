"""Host-side launcher: run the GPU image that matches this host's GPU, via the Docker SDK.

PyTorch and ONNX Runtime ship one CUDA build per range of GPU generations, so the image must
follow the GPU: `compose.yaml` defines one service per image (harness.gpu.catalog.IMAGES) and this
module picks it from the GPU's compute capability (nvidia-smi, NVML on R470, else the name table)
and the driver version (an older driver gets an older CUDA build where one serves), runs it with
that GPU attached, the reports folder bind-mounted and owned by the caller, streams its output
and returns its exit code. Images are built by compose (`docker compose [--profile P] build
SERVICE`); the launcher only runs them.

    python -m resnest_bench.harness.gpu.launcher                 # run gpu, on GPU 0
    python -m resnest_bench.harness.gpu.launcher --gpu 1 -- run gpu --quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnest_bench.harness.errors import BenchError, GpuRequiredError
from resnest_bench.harness.gpu import catalog as gpus

PROJECT = "resnest-bench"  # compose project name: prefixes the named volume
DATA_VOLUME = f"{PROJECT}_bench-data"
DEFAULT_COMMAND = ("run", "gpu")


@dataclass(frozen=True)
class HostGpu:
    """One GPU of this host as the driver reports it."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    driver: tuple[int, ...] | None
    cc_source: str  # "nvidia-smi", "NVML" or "name table" (R470 has no compute_cap field)

    def describe(self) -> str:
        cc = self.compute_capability
        driver = gpus.format_driver(self.driver) if self.driver else "unknown"
        return f"{self.name} (sm_{cc[0]}{cc[1]} from {self.cc_source}, driver {driver})"


def parse_compute_caps(text: str) -> list[tuple[int, int]]:
    """Parse `nvidia-smi --query-gpu=compute_cap --format=csv,noheader` output, one GPU a line."""
    caps = []
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        major, dot, minor = line.partition(".")
        if not (dot and major.isdigit() and minor.isdigit()):
            raise BenchError(f"unexpected compute capability from nvidia-smi: {line!r}")
        caps.append((int(major), int(minor)))
    return caps


def smi(
    run: Callable[..., subprocess.CompletedProcess], fields: str
) -> subprocess.CompletedProcess:
    cmd = ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"]
    try:
        return run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise GpuRequiredError("no NVIDIA GPU here: nvidia-smi is not installed") from None
    except subprocess.TimeoutExpired:
        raise GpuRequiredError("nvidia-smi did not answer in 30 s") from None


def _first_line(proc: subprocess.CompletedProcess) -> str:
    why = (proc.stderr or proc.stdout).strip().splitlines()
    return why[0] if why else f"exit code {proc.returncode}"


def nvml_compute_caps() -> list[tuple[int, int]] | None:
    """Compute capabilities through NVML (nvidia-ml-py), which R470 has; None without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
            return [
                tuple(
                    pynvml.nvmlDeviceGetCudaComputeCapability(pynvml.nvmlDeviceGetHandleByIndex(i))
                )
                for i in range(count)
            ]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # ImportError, NVMLError: NVML is a fallback, the name table is next
        return None


def query_gpus(
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    nvml: Callable[[], list[tuple[int, int]] | None] = nvml_compute_caps,
) -> list[HostGpu]:
    """Every GPU of this host, in nvidia-smi's index order, with compute capability and driver.

    nvidia-smi gives names and the driver on every driver; its compute_cap field is missing on
    R470 (the last driver for the K80), so capability comes from NVML, else the name table."""
    listed = smi(run, "name,driver_version")
    if listed.returncode != 0:
        raise GpuRequiredError(f"nvidia-smi failed: {_first_line(listed)}")
    rows = [line.rsplit(",", 1) for line in listed.stdout.splitlines() if line.strip()]
    if not rows:
        raise GpuRequiredError("nvidia-smi lists no GPU")
    caps_proc = smi(run, "compute_cap")
    caps, source = None, "nvidia-smi"
    if caps_proc.returncode == 0:
        caps = parse_compute_caps(caps_proc.stdout)
    else:
        caps, source = nvml(), "NVML"
    found = []
    for index, (name, driver) in enumerate(rows):
        name = name.strip()
        cc, cc_source = (caps[index], source) if caps and index < len(caps) else (None, "")
        if cc is None:
            spec = gpus.find_gpu(name)
            if spec is None:
                raise GpuRequiredError(
                    f"cannot tell the compute capability of {name}: nvidia-smi has no compute_cap "
                    f"({_first_line(caps_proc)}) and NVML is missing: pip install nvidia-ml-py"
                )
            cc, cc_source = spec.compute_capability, "name table"
        try:
            parsed = gpus.parse_driver(driver)
        except ValueError:
            parsed = None
        found.append(HostGpu(index, name, cc, parsed, cc_source))
    return found


def docker_sdk() -> Any:
    """The Docker SDK module, or a BenchError saying it is missing.

    From a checkout, the repo root is often on sys.path (`python -m pytest`, `python -m
    resnest_bench...`), and without the SDK installed `import docker` then finds the repo's
    docker/ folder (Dockerfile, no __init__.py) as an empty namespace package: that is the SDK
    missing too, reported here rather than as an AttributeError at `docker.types` later.
    """
    missing = "the Docker SDK for Python is missing: pip install 'resnest-bench[host]'"
    try:
        import docker
    except ImportError:
        raise BenchError(missing) from None
    if getattr(docker, "__file__", None) is None:  # a namespace package: our docker/ folder
        raise BenchError(missing)
    return docker


def docker_client() -> Any:
    """A connected Docker SDK client, or a BenchError saying what is missing."""
    docker = docker_sdk()
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise BenchError(f"cannot reach the Docker engine: {exc}") from None
    return client


@dataclass(frozen=True)
class LaunchPlan:
    """Everything the container run needs; built without touching Docker (and tested so)."""

    image: gpus.Image
    gpu: HostGpu
    command: tuple[str, ...]
    reports: Path
    user: str

    @property
    def gpu_index(self) -> int:
        return self.gpu.index

    def describe(self) -> str:
        image = self.image
        return (
            f"GPU {self.gpu_index} {self.gpu.describe()} -> {image.generation}: {image.tag} "
            f"{' '.join(self.command)} (reports -> {self.reports}, user {self.user})"
        )


def plan(
    host_gpus: Sequence[HostGpu],
    *,
    gpu_index: int = 0,
    command: Sequence[str] = DEFAULT_COMMAND,
    reports: Path = Path("reports"),
    user: str | None = None,
) -> LaunchPlan:
    """Pick the image for GPU `gpu_index` (by capability and driver), fix mounts and user."""
    count = len(host_gpus)
    if not 0 <= gpu_index < count:
        raise BenchError(f"no GPU {gpu_index}: this host has {count} (0..{count - 1})")
    gpu = host_gpus[gpu_index]
    try:
        image = gpus.image_for(gpu.compute_capability, gpu.driver)
    except ValueError as exc:
        raise GpuRequiredError(f"GPU {gpu_index} ({gpu.name}): {exc}") from None
    return LaunchPlan(
        image=image,
        gpu=gpu,
        command=tuple(command) or DEFAULT_COMMAND,
        reports=reports.resolve(),
        user=user or f"{os.getuid()}:{os.getgid()}",
    )


def run(p: LaunchPlan, client: Any, out: Callable[[bytes], object] | None = None) -> int:
    """Run the plan's container, stream its output to `out`, return its exit code."""
    docker = docker_sdk()

    image = p.image
    try:
        client.images.get(image.tag)
    except docker.errors.ImageNotFound:
        profile = f"--profile {image.profile} " if image.profile else ""
        raise BenchError(
            f"image {image.tag} is not built: docker compose {profile}build {image.service}"
        ) from None
    p.reports.mkdir(parents=True, exist_ok=True)
    try:
        container = client.containers.run(
            image.tag,
            list(p.command),
            detach=True,
            user=p.user,
            init=True,
            shm_size="2g",
            device_requests=[
                docker.types.DeviceRequest(
                    driver="nvidia", device_ids=[str(p.gpu_index)], capabilities=[["gpu"]]
                )
            ],
            volumes={
                str(p.reports): {"bind": "/reports", "mode": "rw"},
                DATA_VOLUME: {"bind": "/data", "mode": "rw"},
            },
        )
    except docker.errors.APIError as exc:
        reason = exc.explanation or str(exc)
        if "nvidia" in str(reason).lower() or "device driver" in str(reason).lower():
            raise GpuRequiredError(
                f"Docker cannot attach the GPU (is the NVIDIA Container Toolkit installed?): "
                f"{reason}"
            ) from None
        raise BenchError(f"docker could not start {image.tag}: {reason}") from None
    try:
        write = out or sys.stdout.buffer.write
        for chunk in container.logs(stream=True, follow=True):
            write(chunk)
        return int(container.wait()["StatusCode"])
    except KeyboardInterrupt:
        container.stop(timeout=10)
        return 130
    finally:
        container.remove(force=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m resnest_bench.harness.gpu.launcher",
        description="Run the resnest-bench GPU image that matches this host's GPU.",
    )
    parser.add_argument("--gpu", type=int, default=0, help="nvidia-smi index of the GPU to use")
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="host reports dir")
    parser.add_argument("--dry-run", action="store_true", help="print the choice, run nothing")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="resnest-bench arguments (default: run gpu)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        p = plan(query_gpus(), gpu_index=args.gpu, command=command, reports=args.reports)
        print(p.describe(), file=sys.stderr)
        return 0 if args.dry_run else run(p, docker_client())
    except BenchError as exc:
        print(f"resnest-bench launcher: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
