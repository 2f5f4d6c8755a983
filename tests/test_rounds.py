"""harness.rounds: ratios stay right while the machine's speed drifts between rounds."""

import pytest

from resnest_bench.harness.rounds import run_rounds, speedups


class DriftingClock:
    """A fake machine that gets slower every time a round starts (a neighbour's load growing)."""

    def __init__(self):
        self.calls = 0

    def timer(self, cost):
        def one_round():
            self.calls += 1
            slowdown = 1.0 + 0.5 * self.calls  # each round of any target runs slower than the last
            return [cost * slowdown] * 5

        return one_round


def test_interleaved_ratios_cancel_drift():
    clock = DriftingClock()
    timers = {"eager": clock.timer(40.0), "ort": clock.timer(10.0), "int8": clock.timer(5.0)}
    ratios = speedups(run_rounds(timers, rounds=6), "eager")
    # side by side each round: the drift within a round is small next to its drift across rounds
    assert ratios["eager"].median == 1.0
    assert ratios["ort"].median == pytest.approx(4.0, rel=0.25)
    assert ratios["int8"].median == pytest.approx(8.0, rel=0.25)
    assert ratios["ort"].rounds == 6


def test_back_to_back_timing_would_not():
    # the same fake machine timed target after target (all eager rounds, then all ort rounds)
    clock = DriftingClock()
    eager, ort = clock.timer(40.0), clock.timer(10.0)
    seq = {"eager": [eager() for _ in range(6)], "ort": [ort() for _ in range(6)]}
    assert speedups(seq, "eager")["ort"].median < 2.5  # drift ate most of the true 4x


def test_order_rotates_each_round():
    seen = []
    timers = {name: (lambda n=name: seen.append(n) or [1.0]) for name in ("a", "b", "c")}
    run_rounds(timers, rounds=3)
    assert seen == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_range_is_reported():
    samples = {"ref": [[10.0], [10.0], [10.0]], "x": [[5.0], [2.5], [4.0]]}
    ratio = speedups(samples, "ref")["x"]
    assert (ratio.low, ratio.median, ratio.high) == (2.0, 2.5, 4.0)


def test_zero_rounds_is_refused():
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        run_rounds({"a": lambda: [1.0]}, rounds=0)
