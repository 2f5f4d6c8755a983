"""Interleaved rounds: every target timed in every round, the order rotating, ratios per round.

On a shared host the machine's speed drifts while a benchmark runs. Timing target A for a minute
and then target B puts that drift into the ratio A/B. Timing them side by side in short rounds,
rotating who goes first, and taking the ratio within each round cancels it: both saw the same
machine. The speed-up reported is the median of the per-round ratios, with their range.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

RoundTimer = Callable[[], Sequence[float]]  # one round of one target: per-call seconds


class Ratio(BaseModel):
    """Speed-up of a target over the reference: median and range over rounds."""

    model_config = ConfigDict(frozen=True)

    median: float
    low: float
    high: float
    rounds: int


def run_rounds(
    timers: Mapping[str, RoundTimer],
    rounds: int,
    *,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, list[list[float]]]:
    """Samples per target per round; round r starts at target r (mod n), then goes in order.
    on_round(r) runs after round r (a host-load snapshot, a progress tick)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(timers)
    samples: dict[str, list[list[float]]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(list(timers[name]()))
        if on_round is not None:
            on_round(r)
    return samples


def speedups(samples: Mapping[str, Sequence[Sequence[float]]], reference: str) -> dict[str, Ratio]:
    """Per target: reference round median / target round median, over the rounds both ran."""
    ref_medians = [statistics.median(r) for r in samples[reference]]
    out = {}
    for name, per_round in samples.items():
        ratios = [
            ref / statistics.median(times)
            for ref, times in zip(ref_medians, per_round, strict=False)
            if times and statistics.median(times) > 0
        ]
        if ratios:
            out[name] = Ratio(
                median=statistics.median(ratios),
                low=min(ratios),
                high=max(ratios),
                rounds=len(ratios),
            )
    return out
