"""A sweep's points as Ray tasks (`resnest-bench sweep SUITE --ray [ADDRESS]`, extra `.[ray]`).

The driver (this process) plans the sweep, skips finished points, and submits each remaining
point as one task asking for what a point needs: one GPU on a GPU suite, else the threads the
suite gives each runtime. A task trains and deploys its point in a temporary folder on its
worker and returns the point's typed record; only the driver writes (point.json as each
returns, then the sweep's report), so no shared filesystem is assumed, and a point's files
(checkpoints, artifacts) stay on its worker and go with the task. Ray starts a task again
once when its worker dies; a second death records the point as failed, with the reason, and
the other points go on.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnest_bench.harness import console
from resnest_bench.harness.errors import BenchError, one_line
from resnest_bench.harness.gpu.accel import select_device
from resnest_bench.harness.results.sweep import SweepPoint
from resnest_bench.harness.sweep.point import Candidate, run_point

if TYPE_CHECKING:
    from resnest_bench.harness.data import Dataset
    from resnest_bench.harness.stages import RunRequest

# How many times Ray starts a point again after its worker process died (then: failed).
RETRIES = 1


def _run_point_here(request: RunRequest, point: Candidate, dataset: Any) -> SweepPoint:
    """The task body, on a worker: the point in a folder of its own that goes with the task;
    the suite's device resolved where it runs (a GPU node's GPU)."""
    device = str(select_device(request.suite.device))
    with tempfile.TemporaryDirectory(prefix=f"resnest-{point.id}-") as folder:
        return run_point(request, point, dataset, device, Path(folder))


def check_reachable(address: str) -> None:
    """A HOST:PORT address must answer before anything is claimed: Ray itself keeps retrying
    an address nobody listens on for minutes. "auto" and "local" are Ray's to resolve."""
    import socket

    host, _, port = address.rpartition(":")
    if address in ("auto", "local") or not port.isdigit():
        return
    try:
        socket.create_connection((host.removeprefix("ray://"), int(port)), timeout=5).close()
    except OSError as exc:
        raise BenchError(f"--ray {address}: no Ray cluster answers there ({exc})") from None


def _resources(request: RunRequest) -> dict[str, float]:
    suite = request.suite
    if suite.device.startswith("cuda"):
        return {"num_gpus": 1}
    return {"num_cpus": suite.deploy.threads or 1}


def run_on_ray(
    request: RunRequest, points: list[Candidate], dataset: Dataset, address: str
) -> Iterator[tuple[Candidate, SweepPoint]]:
    """Every point as a task on the Ray cluster at `address` ("auto": the one this machine
    belongs to, or a new local one); yields each point's record as its task ends."""
    try:
        import ray
        from ray.exceptions import RayError
    except ImportError:
        raise BenchError("--ray needs Ray: pip install 'resnest-bench[ray]'") from None
    if not points:
        return
    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == "local" else address, log_to_driver=False)
    try:
        task = ray.remote(max_retries=RETRIES, **_resources(request))(_run_point_here)
        shared = ray.put(dataset)  # once into the object store, not once per task
        running = {task.remote(request, point, shared): point for point in points}
        console.log(f"ray: {len(points)} points submitted to {address}")
        while running:
            (ready,), _ = ray.wait(list(running), num_returns=1)
            point = running.pop(ready)
            try:
                outcome = ray.get(ready)
            except RayError as exc:  # its worker died twice, or Ray lost the task
                outcome = point.record("failed", f"ray: {one_line(exc)}")
            yield point, outcome
    finally:
        if started:
            ray.shutdown()
