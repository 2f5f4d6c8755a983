"""The one timing loop (the clock) used by training and inference alike.

Rules it enforces so numbers are comparable: warm-up calls are not timed, the device is
synchronised on both sides of every timed call (CUDA kernels are asynchronous), and sampling
continues until BOTH a minimum count and a minimum duration are reached, so fast and slow
calls both get enough samples. The result is harness.results.stats.Stats, in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.results.stats import Stats

if TYPE_CHECKING:  # a low module: the config (and the runtimes it validates) import it
    from resnest_bench.harness.config import TimingSection


def measure(
    fn: Callable[[], object],
    timing: TimingSection,
    *,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    on_iter: Callable[[int], None] | None = None,
) -> Stats:
    """Time `fn` as `timing` says; on_iter(i) runs after timed call i, outside the timed region."""
    return Stats.from_samples(sample(fn, timing, sync=sync, clock=clock, on_iter=on_iter))


def sample(
    fn: Callable[[], object],
    timing: TimingSection,
    *,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    on_iter: Callable[[int], None] | None = None,
) -> list[float]:
    """The seconds of each timed call of `fn` (what measure summarises)."""
    sync_fn = sync or (lambda: None)
    for _ in range(timing.warmup):
        fn()
    sync_fn()
    samples: list[float] = []
    start = clock()
    while True:
        sync_fn()
        t0 = clock()
        fn()
        sync_fn()
        t1 = clock()
        samples.append(t1 - t0)
        if on_iter is not None:
            on_iter(len(samples) - 1)
        elapsed = t1 - start
        if len(samples) >= timing.min_iters and elapsed >= timing.min_seconds:
            break
        if timing.max_seconds is not None and elapsed >= timing.max_seconds:
            break
    return samples


def cuda_sync(device: object) -> Callable[[], None] | None:
    """A synchroniser for `device` (str or torch.device) when it is CUDA, else None."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise BenchError(f"not a device: {device!r}") from exc
    if dev.type != "cuda":
        return None
    return lambda: torch.cuda.synchronize(dev)
