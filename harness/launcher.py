"""Host-side launcher: run the GPU image that matches this host's GPU, via the Docker SDK.

PyTorch and ONNX Runtime ship one CUDA build per range of GPU generations, so the image must
follow the GPU: `compose.yaml` defines one service per generation and this module picks it from
`nvidia-smi`'s compute capability, runs it with that GPU attached, the reports folder bind-mounted
and owned by the caller, streams its output and returns its exit code. Images are built by
compose (`docker compose [--profile P] build SERVICE`); the launcher only runs them.

    python -m resnest_bench.harness.launcher                 # run gpu, on GPU 0
    python -m resnest_bench.harness.launcher --gpu 1 -- run gpu --quick
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

PROJECT = "resnest-bench"  # compose project name: prefixes the named volume
DATA_VOLUME = f"{PROJECT}_bench-data"
DEFAULT_COMMAND = ("run", "gpu")


@dataclass(frozen=True)
class Generation:
    """A range of GPU generations that one image (compose service) serves."""

    name: str
    min_cc: tuple[int, int]  # lowest compute capability served (inclusive)
    service: str
    image: str
    profile: str | None  # compose profile that enables the service, if any


# Newest first; each serves everything from its min_cc up to the next newer one's. CUDA 13 (cu130)
# starts at Turing; Maxwell goes with Kepler because the cu118 torch build still carries sm_50
# and its CPU onnxruntime cannot fail on a missing CUDA kernel.
GENERATIONS = (
    Generation("turing+", (7, 5), "bench-gpu", "resnest-bench-gpu:0.1.0-cu130", None),
    Generation("pascal-volta", (6, 0), "bench-gpu-volta", "resnest-bench-gpu:0.1.0-cu126", "volta"),
    Generation(
        "kepler-maxwell", (3, 7), "bench-gpu-kepler", "resnest-bench-gpu:0.1.0-cu118", "kepler"
    ),
)


def generation_for(cc: tuple[int, int]) -> Generation:
    """The image generation for a compute capability, e.g. (8, 0) -> turing+."""
    for gen in GENERATIONS:
        if cc >= gen.min_cc:
            return gen
    oldest = GENERATIONS[-1].min_cc
    raise GpuRequiredError(
        f"GPU compute capability {cc[0]}.{cc[1]} is older than any image supports "
        f"(oldest: {oldest[0]}.{oldest[1]}, Kepler K80)"
    )


def parse_compute_caps(text: str) -> list[tuple[int, int]]:
    """Parse `nvidia-smi --query-gpu=compute_cap --format=csv,noheader` output, one GPU a line."""
    caps = []
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        major, dot, minor = line.partition(".")
        if not (dot and major.isdigit() and minor.isdigit()):
            raise BenchError(f"unexpected compute capability from nvidia-smi: {line!r}")
        caps.append((int(major), int(minor)))
    return caps


def query_compute_caps(
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> list[tuple[int, int]]:
    """Compute capability of every GPU on this host, in nvidia-smi's index order."""
    cmd = ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"]
    try:
        proc = run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise GpuRequiredError("no NVIDIA GPU here: nvidia-smi is not installed") from None
    except subprocess.TimeoutExpired:
        raise GpuRequiredError("nvidia-smi did not answer in 30 s") from None
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip().splitlines()
        raise GpuRequiredError(f"nvidia-smi failed: {why[0] if why else proc.returncode}")
    caps = parse_compute_caps(proc.stdout)
    if not caps:
        raise GpuRequiredError("nvidia-smi lists no GPU")
    return caps


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

    generation: Generation
    gpu_index: int
    command: tuple[str, ...]
    reports: Path
    user: str

    def describe(self) -> str:
        gen = self.generation
        return (
            f"GPU {self.gpu_index} -> {gen.name}: {gen.image} {' '.join(self.command)} "
            f"(reports -> {self.reports}, user {self.user})"
        )


def plan(
    caps: Sequence[tuple[int, int]],
    *,
    gpu_index: int = 0,
    command: Sequence[str] = DEFAULT_COMMAND,
    reports: Path = Path("reports"),
    user: str | None = None,
) -> LaunchPlan:
    """Pick the image for GPU `gpu_index` and fix the run's mounts and user."""
    if not 0 <= gpu_index < len(caps):
        raise BenchError(f"no GPU {gpu_index}: this host has {len(caps)} (0..{len(caps) - 1})")
    return LaunchPlan(
        generation=generation_for(caps[gpu_index]),
        gpu_index=gpu_index,
        command=tuple(command) or DEFAULT_COMMAND,
        reports=reports.resolve(),
        user=user or f"{os.getuid()}:{os.getgid()}",
    )


def run(p: LaunchPlan, client: Any, out: Callable[[bytes], object] | None = None) -> int:
    """Run the plan's container, stream its output to `out`, return its exit code."""
    docker = docker_sdk()

    gen = p.generation
    try:
        client.images.get(gen.image)
    except docker.errors.ImageNotFound:
        profile = f"--profile {gen.profile} " if gen.profile else ""
        raise BenchError(
            f"image {gen.image} is not built: docker compose {profile}build {gen.service}"
        ) from None
    p.reports.mkdir(parents=True, exist_ok=True)
    try:
        container = client.containers.run(
            gen.image,
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
        raise BenchError(f"docker could not start {gen.image}: {reason}") from None
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
        prog="python -m resnest_bench.harness.launcher",
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
        p = plan(query_compute_caps(), gpu_index=args.gpu, command=command, reports=args.reports)
        print(p.describe(), file=sys.stderr)
        return 0 if args.dry_run else run(p, docker_client())
    except BenchError as exc:
        print(f"resnest-bench launcher: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
