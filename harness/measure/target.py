"""One target (a runtime on one artifact) served by its own spawned process for the whole run.

A fresh interpreter per target makes its cold start (imports done, nothing cached) and its
peak RSS its own; keeping it alive lets the parent time every target in interleaved rounds
(harness.rounds) so drift on a shared host lands in no ratio. The parent sends requests over a
pipe and the child answers each (TargetProcess.call):

    load                 -> load_s, first_inference_s, threads, device   (cold start, warm-up)
    round  timing        -> per-call seconds of batch-1 calls     (one round of the timing loop)
    throughput batch     -> per-call seconds of `batch`-image calls (one round; the batch is
                            staged and warmed up on its first); ("oom", line) when it does not fit
    accuracy             -> per-image seconds (first `timed`), logits of the whole test set
    rss                  -> peak RSS of the process
    stop

A request that raises answers ("error", one line); a child that dies answers nothing, and the
parent reports that with its exit code. Either way only this target fails.

Timed calls run on inputs staged where the runtime reads them (GPU memory for a GPU runtime;
Runtime.stage) and are bracketed by the runtime's sync(), so a GPU figure is the model's
time, not a host->device copy's or a kernel launch's.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnest_bench.harness.clock import sample
from resnest_bench.harness.config import TimingSection
from resnest_bench.harness.data import ImageSet, normalize
from resnest_bench.harness.errors import one_line
from resnest_bench.harness.host.envinfo import peak_rss_bytes
from resnest_bench.harness.measure.threads import child_environment
from resnest_bench.harness.results.deployment import ThreadPolicy
from resnest_bench.harness.runtimes import get_runtime
from resnest_bench.harness.runtimes.base import out_of_memory

EVAL_BATCH = 32  # batch of the untimed part of the test-set pass (and of reference logits)
# Test images kept staged in GPU memory for the timing loops (the CPU uses all of them): enough
# distinct inputs, without a large test set's copy crowding out the largest batches.
DEVICE_POOL = 512


@dataclass(frozen=True)
class Job:
    """Everything a spawned measurement process needs (picklable)."""

    target: str
    runtime: str
    artifact: str
    path: Path
    test: ImageSet
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    policy: ThreadPolicy
    warmup: int
    device: str = "cpu"  # the suite's device: GPU runtimes run there (Runtime.placement)


class TargetFailed(Exception):
    """The target's process raised or died; str() is the one-line reason."""


class OutOfMemory(Exception):
    """A throughput batch did not fit in device memory; the target itself is fine."""


class Worker:
    """The child side: one loaded runtime and the test images, answering requests."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.x = normalize(job.test.images, job.mean, job.std).numpy()
        self.runtime = get_runtime(job.runtime, threads=job.policy.threads, device=job.device)
        self.runtime.spinning = job.policy.ort_spinning  # read by ONNX Runtime sessions only
        self.pool = self.x if self.runtime.device == "cpu" else self.x[:DEVICE_POOL]
        self.staged_batch: tuple[int, Iterator[Any]] | None = None  # throughput's batch, chunks

    def load(self) -> dict[str, Any]:
        import psutil

        rss_before = psutil.Process().memory_info().rss
        start = time.perf_counter()
        self.runtime.load(self.job.path)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        self.runtime.run(self.x[:1])
        first_s = time.perf_counter() - start
        staged = self.runtime.stage(self.pool)
        self.singles = itertools.cycle([staged[i : i + 1] for i in range(len(self.pool))])
        for _ in range(self.job.warmup):
            self.runtime.forward(next(self.singles))
        self.runtime.sync()
        return {
            "load_s": load_s,
            "first_inference_s": first_s,
            "threads": self.runtime.threads,
            "device": self.runtime.device,
            "rss_before_load_bytes": rss_before,
        }

    def round(self, timing: TimingSection) -> list[float]:
        forward = self.runtime.forward
        return sample(lambda: forward(next(self.singles)), timing, sync=self.runtime.sync)

    def throughput(self, batch: int, timing: TimingSection) -> list[float]:
        """One round of `batch`-image calls; OutOfMemory when the batch does not fit."""
        try:
            chunks = self._chunks(batch)
            forward = self.runtime.forward
            return sample(lambda: forward(next(chunks)), timing, sync=self.runtime.sync)
        except Exception as exc:
            if not out_of_memory(exc):
                raise
            reason = f"batch {batch}: {one_line(exc)}"
        self.staged_batch = None
        self.runtime.release()  # the staged batches went with the exception's frames
        raise OutOfMemory(reason)

    def _chunks(self, batch: int) -> Iterator[Any]:
        """The pool staged in `batch`-image chunks, warmed up once per batch size (its kernels
        and allocations differ from batch 1's); the previous size's chunks are let go first."""
        if self.staged_batch is None or self.staged_batch[0] != batch:
            self.staged_batch = None
            staged = [self.runtime.stage(c) for c in batches(self.pool, batch, whole=True)]
            chunks = itertools.cycle(staged)
            for _ in range(self.job.warmup):
                self.runtime.forward(next(chunks))
            self.runtime.sync()
            self.staged_batch = (batch, chunks)
        return self.staged_batch[1]

    def accuracy(self, timed: int) -> tuple[list[float], np.ndarray]:
        """Per-image seconds of the first `timed` images (staged, synchronised, each fetched
        outside its time) and the logits of every image."""
        times, outputs = [], []
        for i in range(min(timed, len(self.x))):
            staged = self.runtime.stage(self.x[i : i + 1])
            self.runtime.sync()
            start = time.perf_counter()
            output = self.runtime.forward(staged)
            self.runtime.sync()
            times.append(time.perf_counter() - start)
            outputs.append(self.runtime.fetch(output))
        rest = self.x[len(outputs) :]
        outputs += [self.runtime.run(chunk) for chunk in batches(rest, EVAL_BATCH, whole=False)]
        return times, np.concatenate(outputs).astype(np.float32)

    def rss(self) -> int:
        return own_peak_rss()


def serve(connection: Any, job: Job) -> None:
    """Child entry point: answer requests until `stop` or the parent goes away."""
    worker: Worker | None = None
    while True:
        try:
            op, kwargs = connection.recv()
        except EOFError:
            return
        if op == "stop":
            return
        try:
            if worker is None:
                worker = Worker(job)
            connection.send(("ok", getattr(worker, op)(**kwargs)))
        except OutOfMemory as exc:
            connection.send(("oom", str(exc)))
        except Exception as exc:  # any failure of this target is reported, never raised here
            connection.send(("error", one_line(exc)))


class TargetProcess:
    """The parent side: a spawned child serving one Job; call() sends a request and waits.
    The child starts at the first call, so no target's start-up (imports) overlaps another
    target's timed load."""

    def __init__(self, job: Job) -> None:
        context = multiprocessing.get_context("spawn")
        self.job = job
        self.connection, self._child = context.Pipe()
        self.process = context.Process(target=serve, args=(self._child, job), daemon=True)

    def call(self, op: str, **kwargs: Any) -> Any:
        """The answer to `op`; TargetFailed with one line when the child raised or died,
        OutOfMemory when a throughput batch did not fit."""
        if self.process.pid is None:
            with child_environment(self.job.policy):
                self.process.start()
            self._child.close()
        try:
            self.connection.send((op, kwargs))
            status, value = self.connection.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.process.join(timeout=5)
            raise TargetFailed(
                f"measurement process died during {op} (exit code {self.process.exitcode})"
            ) from None
        if status == "error":
            raise TargetFailed(f"{op} failed: {value}")
        if status == "oom":
            raise OutOfMemory(value)
        return value

    def close(self) -> None:
        if self.process.pid is None:
            self._child.close()
        elif self.process.is_alive():
            with contextlib.suppress(OSError, BrokenPipeError):
                self.connection.send(("stop", {}))
            self.process.join(timeout=10)
        if self.process.pid is not None and self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


class InProcess:
    """A Worker in this process behind the same call() (tests; no cold start of its own)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.worker: Worker | None = None

    def call(self, op: str, **kwargs: Any) -> Any:
        try:
            if self.worker is None:
                self.worker = Worker(self.job)
            return getattr(self.worker, op)(**kwargs)
        except OutOfMemory:
            raise
        except Exception as exc:
            raise TargetFailed(f"{op} failed: {one_line(exc)}") from exc

    def close(self) -> None:
        self.worker = None


def own_peak_rss() -> int:
    """Peak RSS of this process image. Linux's ru_maxrss (envinfo.peak_rss_bytes) carries the
    parent's peak across fork+exec, so a spawned child reads VmHWM, which exec resets."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss_bytes()


def batches(x: np.ndarray, size: int, *, whole: bool) -> list[np.ndarray]:
    """Consecutive slices of `size`; whole=True drops a short tail (and repeats x if too few)."""
    if whole and len(x) < size:
        x = np.concatenate([x] * (size // len(x) + 1))
    stop = len(x) - len(x) % size if whole else len(x)
    return [x[i : i + size] for i in range(0, stop, size)]
