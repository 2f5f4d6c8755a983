"""The one timing loop used by training and inference alike.

Rules it enforces so numbers are comparable: warm-up calls are not timed, the device is
synchronised on both sides of every timed call (CUDA kernels are asynchronous), and sampling
continues until BOTH a minimum count and a minimum duration are reached, so fast and slow
calls both get enough samples. Results are robust statistics (median, p90, p99) plus spread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

from resnest_bench.harness.errors import BenchError

_TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class TimingPolicy:
    """How long to sample: warm-up calls, then at least min_iters AND min_seconds of calls.

    max_seconds (None = no cap) stops a very slow call early, even below min_iters.
    """

    warmup: int = 10
    min_iters: int = 50
    min_seconds: float = 2.0
    max_seconds: float | None = 120.0

    def __post_init__(self) -> None:
        if not _is_int(self.warmup) or self.warmup < 0:
            raise BenchError(f"timing warmup must be an integer >= 0, got {self.warmup!r}")
        if not _is_int(self.min_iters) or self.min_iters < 1:
            raise BenchError(f"timing min_iters must be an integer >= 1, got {self.min_iters!r}")
        if not _is_number(self.min_seconds) or not 0 <= self.min_seconds < math.inf:
            raise BenchError(
                f"timing min_seconds must be a finite number >= 0, got {self.min_seconds!r}"
            )
        if self.max_seconds is not None:
            if not _is_number(self.max_seconds) or not 0 < self.max_seconds < math.inf:
                raise BenchError(
                    f"timing max_seconds must be a finite number > 0 or None, "
                    f"got {self.max_seconds!r}"
                )
            if self.max_seconds < self.min_seconds:
                raise BenchError(
                    f"timing max_seconds ({self.max_seconds}) is below "
                    f"min_seconds ({self.min_seconds})"
                )


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    rank = (len(ordered) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def _fmt(value: float) -> str:
    """Three significant digits, keeping trailing zeros ("12.0") so columns read evenly."""
    return f"{value:#.3g}".rstrip(".") if abs(value) < 1000 else f"{value:.0f}"


@dataclass(frozen=True)
class SampleStats:
    """Summary of repeated measurements (seconds unless scaled); std is the sample std."""

    n: int
    mean: float
    median: float
    p90: float
    p99: float
    min: float
    max: float
    std: float
    cv: float

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> SampleStats:
        values = [float(v) for v in samples]
        if not values:
            raise BenchError("no timing samples to summarise")
        if not all(math.isfinite(v) for v in values):
            raise BenchError("timing samples contain NaN or infinity")
        ordered = sorted(values)
        n = len(ordered)
        mean = math.fsum(ordered) / n
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in ordered) / (n - 1)) if n > 1 else 0.0
        return cls(
            n=n,
            mean=mean,
            median=_percentile(ordered, 50),
            p90=_percentile(ordered, 90),
            p99=_percentile(ordered, 99),
            min=ordered[0],
            max=ordered[-1],
            std=std,
            cv=std / mean if mean != 0 else 0.0,
        )

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def scaled(self, factor: float) -> SampleStats:
        """Same statistics in another unit (e.g. factor 1e3 for s -> ms); n and cv unchanged."""
        keep = {"n", "cv"}
        return SampleStats(
            **{
                f.name: getattr(self, f.name) if f.name in keep else getattr(self, f.name) * factor
                for f in fields(self)
            }
        )

    def summary(self, unit: str = "ms") -> str:
        """One line for logs, converting from seconds: '12.3 ms (p90 13.1, p99 14.0, ...)'."""
        if unit not in _TIME_UNITS:
            raise ValueError(f"unknown time unit {unit!r}; use one of {sorted(_TIME_UNITS)}")
        s = self.scaled(_TIME_UNITS[unit])
        return (
            f"{_fmt(s.median)} {unit} (p90 {_fmt(s.p90)}, p99 {_fmt(s.p99)}, "
            f"cv {self.cv * 100:.1f}%, n={self.n})"
        )


def measure(
    fn: Callable[[], object],
    policy: TimingPolicy,
    *,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    on_iter: Callable[[int], None] | None = None,
) -> SampleStats:
    """Time `fn` under `policy`; on_iter(i) runs after timed call i, outside the timed region."""
    sync_fn = sync or (lambda: None)
    for _ in range(policy.warmup):
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
        if len(samples) >= policy.min_iters and elapsed >= policy.min_seconds:
            break
        if policy.max_seconds is not None and elapsed >= policy.max_seconds:
            break
    return SampleStats.from_samples(samples)


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
