"""One target (a runtime on one artifact) served by its own spawned process for the whole run.

A fresh interpreter per target makes its cold start (imports done, nothing cached) and its
peak RSS its own; keeping it alive lets the parent time every target in interleaved rounds
(harness.rounds) so drift on a shared host lands in no ratio. The parent sends requests over a
pipe and the child answers each (TargetProcess.call):

    load                 -> load_s, first_inference_s, threads   (cold start, warm-up)
    round  timing        -> per-call seconds of batch-1 calls     (one round of the timing loop)
    throughput batch     -> Stats of batch times, seconds
    accuracy             -> per-image seconds (first `timed`), logits of the whole test set
    rss                  -> peak RSS of the process
    stop

A request that raises answers ("error", one line); a child that dies answers nothing, and the
parent reports that with its exit code. Either way only this target fails.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnest_bench.harness.build.files import first_line
from resnest_bench.harness.config import TimingSection
from resnest_bench.harness.data import ImageSet, normalize
from resnest_bench.harness.envinfo import peak_rss_bytes
from resnest_bench.harness.measure.threads import child_environment
from resnest_bench.harness.measure.timing import measure, sample
from resnest_bench.harness.results.deployment import ThreadPolicy
from resnest_bench.harness.runtimes import get_runtime

EVAL_BATCH = 32  # batch of the untimed part of the test-set pass (and of reference logits)


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


class TargetFailed(Exception):
    """The target's process raised or died; str() is the one-line reason."""


class Worker:
    """The child side: one loaded runtime and the test images, answering requests."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.x = normalize(job.test.images, job.mean, job.std).numpy()
        self.singles = itertools.cycle([self.x[i : i + 1] for i in range(len(self.x))])
        self.runtime = get_runtime(job.runtime, threads=job.policy.threads)
        self.runtime.spinning = job.policy.ort_spinning  # read by ONNX Runtime sessions only

    def load(self) -> dict[str, Any]:
        import psutil

        rss_before = psutil.Process().memory_info().rss
        start = time.perf_counter()
        self.runtime.load(self.job.path)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        self.runtime.run(self.x[:1])
        first_s = time.perf_counter() - start
        for _ in range(self.job.warmup):
            self.runtime.run(next(self.singles))
        return {
            "load_s": load_s,
            "first_inference_s": first_s,
            "threads": self.runtime.threads,
            "rss_before_load_bytes": rss_before,
        }

    def round(self, timing: TimingSection) -> list[float]:
        return sample(lambda: self.runtime.run(next(self.singles)), timing)

    def throughput(self, batch: int, timing: TimingSection):
        chunks = itertools.cycle(batches(self.x, batch, whole=True))
        return measure(lambda: self.runtime.run(next(chunks)), timing)

    def accuracy(self, timed: int) -> tuple[list[float], np.ndarray]:
        times, outputs = [], []
        for i in range(min(timed, len(self.x))):
            start = time.perf_counter()
            outputs.append(self.runtime.run(self.x[i : i + 1]))
            times.append(time.perf_counter() - start)
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
        except Exception as exc:  # any failure of this target is reported, never raised here
            connection.send(("error", first_line(exc)))


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
        """The answer to `op`; TargetFailed with one line when the child raised or died."""
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
        except Exception as exc:
            raise TargetFailed(f"{op} failed: {first_line(exc)}") from exc

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
