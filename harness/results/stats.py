"""Summary statistics of repeated measurements: the one shape every timing is stored in."""

from __future__ import annotations

import math
from collections.abc import Sequence

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.results.record import Record


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method); `ordered` sorted."""
    rank = (len(ordered) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


class Stats(Record):
    """n samples summarised robustly (median, p90, p99) with their spread; std is the sample
    std and cv = std / mean. The unit is the caller's (seconds unless scaled)."""

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
    def from_samples(cls, samples: Sequence[float]) -> Stats:
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
            median=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            min=ordered[0],
            max=ordered[-1],
            std=std,
            cv=std / mean if mean != 0 else 0.0,
        )

    def scaled(self, factor: float) -> Stats:
        """The same statistics in another unit (factor 1e3: s -> ms); n and cv unchanged."""
        fields = ("mean", "median", "p90", "p99", "min", "max", "std")
        return self.model_copy(update={k: getattr(self, k) * factor for k in fields})


class RoundRatio(Record):
    """A ratio of two targets timed side by side, taken within each interleaved round: the
    median and range over the rounds both ran (harness.rounds)."""

    median: float
    low: float
    high: float
    rounds: int
