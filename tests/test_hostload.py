"""harness.host.load: the busy-host verdict and the row cross-check, on constructed counters."""

import sys

import pytest

from resnest_bench.harness.host.load import HostSnapshot, host_load, row_disagreement, snapshot


def _snap(wall, busy, own, steal=0.0, total=None):
    return HostSnapshot(
        wall_s=wall,
        load_1m=1.0,
        busy_s=busy,
        steal_s=steal,
        total_s=total if total is not None else 2 * wall,
        own_s=own,
        cpu_mhz=2000.0,
    )


def test_our_own_cpu_time_does_not_make_the_host_busy():
    load = host_load(_snap(0, 0, 0), _snap(10, 20, 19.5))  # 2 cores busy, 1.95 of them ours
    assert load.busy is False
    assert load.other_cores == pytest.approx(0.05)


def test_another_process_using_a_core_makes_it_busy():
    load = host_load(_snap(0, 0, 0), _snap(10, 20, 10))
    assert load.busy is True
    assert "1.00 cores" in load.reason


def test_steal_makes_it_busy():
    load = host_load(_snap(0, 0, 0, steal=0, total=0), _snap(10, 10, 10, steal=4, total=20))
    assert load.busy is True
    assert "stole 20%" in load.reason


def test_unmeasurable_host_is_unknown_not_quiet():
    blind = HostSnapshot(
        wall_s=0, load_1m=None, busy_s=None, steal_s=None, total_s=None, own_s=0, cpu_mhz=None
    )
    assert host_load(blind, blind.model_copy(update={"wall_s": 1})).busy is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_real_snapshot_reads_the_counters():
    first = snapshot()
    assert first.busy_s is not None and first.total_s > 0 and first.own_s > 0


def test_the_issue_row_is_flagged():
    # eager reported 2,408 ms at batch 1, 246 ms per image over the test set, ~97 ms batched
    why = row_disagreement(2408.0, 246.0)
    assert why is not None and "9.8x apart" in why


def test_a_large_batching_gain_is_not_a_disagreement():
    # CI's ImageNet-stem model on 32x32: 47.1 ms at batch 1, 6.5 ms per image batched, both true
    assert row_disagreement(47.1, 46.0) is None


def test_consistent_rows_pass():
    assert row_disagreement(44.4, 46.0) is None
    assert row_disagreement(None, 46.0) is None
    assert row_disagreement(44.4, None) is None
