"""Timing: exact statistics, the min_iters AND min_seconds rule, warm-up, sync, validation."""

from __future__ import annotations

import numpy as np
import pytest

from resnest_bench.harness.clock import cuda_sync, measure
from resnest_bench.harness.config import TimingSection, validate_suite
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.results.stats import Stats


class FakeClock:
    """Time moves only when the measured function says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self.log: list[str] = []

    def __call__(self) -> float:
        self.log.append("clock")
        return self.now


def make_fn(clock: FakeClock, durations):
    """A callable taking durations[i] seconds on call i (last value repeats)."""
    calls = {"n": 0}

    def fn():
        i = calls["n"]
        calls["n"] += 1
        clock.log.append("fn")
        clock.now += durations[min(i, len(durations) - 1)]

    return fn, calls


def test_percentiles_match_numpy_linear():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100, 257):
        samples = rng.exponential(1.0, n).tolist()
        s = Stats.from_samples(samples)
        assert s.n == n
        assert s.median == pytest.approx(np.percentile(samples, 50))
        assert s.p90 == pytest.approx(np.percentile(samples, 90))
        assert s.p99 == pytest.approx(np.percentile(samples, 99))
        assert s.mean == pytest.approx(np.mean(samples))
        assert s.std == pytest.approx(np.std(samples, ddof=1) if n > 1 else 0.0)
        assert (s.min, s.max) == (min(samples), max(samples))


def test_exact_small_sample_values():
    s = Stats.from_samples([4.0, 1.0, 3.0, 2.0])
    assert (s.median, s.p90, s.p99) == pytest.approx((2.5, 3.7, 3.97))
    assert s.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s.cv == pytest.approx(s.std / 2.5)


def test_empty_or_nonfinite_samples_rejected():
    with pytest.raises(BenchError):
        Stats.from_samples([])
    with pytest.raises(BenchError):
        Stats.from_samples([1.0, float("nan")])


def test_scaled_and_dumped():
    s = Stats.from_samples([0.010, 0.012, 0.014])
    ms = s.scaled(1e3)
    assert ms.median == pytest.approx(12.0) and ms.n == 3 and ms.cv == s.cv
    d = s.model_dump()
    assert set(d) == {"n", "mean", "median", "p90", "p99", "min", "max", "std", "cv"}


def test_min_iters_dominates_when_calls_are_slow_enough():
    clock = FakeClock()
    fn, calls = make_fn(clock, [1.0])
    stats = measure(fn, TimingSection(warmup=0, min_iters=5, min_seconds=2.0), clock=clock)
    # 2 s is reached after 2 calls, but 5 are required.
    assert stats.n == 5 and calls["n"] == 5
    assert stats.median == 1.0


def test_min_seconds_dominates_when_calls_are_fast():
    clock = FakeClock()
    fn, _ = make_fn(clock, [0.25])
    stats = measure(fn, TimingSection(warmup=0, min_iters=3, min_seconds=2.0), clock=clock)
    assert stats.n == 8  # 8 * 0.25 s reaches 2 s; 3 iterations alone would stop at 0.75 s


def test_warmup_not_counted_and_on_iter_called():
    clock = FakeClock()
    # Three slow warm-up calls, then fast timed calls.
    fn, calls = make_fn(clock, [100.0, 100.0, 100.0, 0.5])
    seen = []
    stats = measure(
        fn,
        TimingSection(warmup=3, min_iters=4, min_seconds=0.0, max_seconds=None),
        clock=clock,
        on_iter=seen.append,
    )
    assert calls["n"] == 7
    assert stats.n == 4 and stats.max == 0.5
    assert seen == [0, 1, 2, 3]


def test_max_seconds_stops_early():
    clock = FakeClock()
    fn, _ = make_fn(clock, [3.0])
    stats = measure(
        fn, TimingSection(warmup=0, min_iters=100, min_seconds=1.0, max_seconds=10.0), clock=clock
    )
    assert stats.n == 4  # 4 calls pass 10 s


def test_sync_brackets_every_timed_call():
    clock = FakeClock()
    fn, _ = make_fn(clock, [1.0])
    measure(
        fn,
        TimingSection(warmup=1, min_iters=2, min_seconds=0.0),
        sync=lambda: clock.log.append("sync"),
        clock=clock,
    )
    timed = clock.log[clock.log.index("clock") :]
    # Each timed call: sync, clock, fn, sync, clock.
    assert timed[1:] == ["sync", "clock", "fn", "sync", "clock"] * 2
    assert clock.log[:2] == ["fn", "sync"]  # warm-up work is flushed before timing starts


@pytest.mark.parametrize(
    "kwargs",
    [
        {"warmup": -1},
        {"min_iters": 0},
        {"min_iters": 2.5},
        {"min_seconds": -0.1},
        {"min_seconds": float("inf")},
        {"max_seconds": 0},
        {"min_seconds": 5.0, "max_seconds": 1.0},
    ],
)
def test_timing_validation(kwargs):
    suite = {"name": "t", "steps": ["deploy"], "deploy": {"timing": kwargs}}
    with pytest.raises(BenchError, match=r"deploy\.timing"):
        validate_suite(suite, "t.toml")


def test_cuda_sync_only_for_cuda():
    assert cuda_sync("cpu") is None
    assert callable(cuda_sync("cuda:0"))  # not called: no GPU needed to build it
    with pytest.raises(BenchError):
        cuda_sync("not-a-device")


def test_real_clock_smoke():
    stats = measure(lambda: sum(range(100)), TimingSection(warmup=2, min_iters=5, min_seconds=0.01))
    assert stats.n >= 5 and stats.min >= 0
