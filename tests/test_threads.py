"""The thread policy: usable CPUs by default, ORT spinning off on a shared host, OpenMP passive,
and the child's environment set only while it starts."""

from __future__ import annotations

import os

from resnest_bench.harness.measure import threads
from resnest_bench.harness.results.environment import CgroupLimits


def test_quota_capped_host_turns_spinning_off(monkeypatch):
    monkeypatch.setattr(threads, "cgroup_limits", lambda: CgroupLimits(cpu_quota_cores=1.5))
    monkeypatch.setattr(threads, "usable_cpus", lambda limits=None: 2)
    policy = threads.choose(None, "auto")
    assert policy.threads == 2 and policy.ort_spinning is False
    assert "cgroup CPU quota 1.5 cores" in policy.reason and policy.omp_wait_policy == "PASSIVE"
    assert threads.choose(3, "on").ort_spinning is True
    assert "3 intra-op threads (--threads)" in threads.choose(3, "on").reason


def test_quiet_dedicated_host_keeps_spinning(monkeypatch):
    """Others' CPU use just before timing decides, not the load average our own export left."""
    monkeypatch.setattr(threads, "cgroup_limits", lambda: CgroupLimits())
    monkeypatch.setattr(threads, "usable_cpus", lambda limits=None: 4)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    monkeypatch.setattr(threads, "others_cores", lambda: 0.1)
    assert threads.choose(None, "auto").ort_spinning is True
    monkeypatch.setattr(threads, "others_cores", lambda: 2.5)
    policy = threads.choose(None, "auto")
    assert policy.ort_spinning is False and "other processes used 2.50 of 4 CPUs" in policy.reason
    assert threads.choose(None, "off").ort_spinning is False
    monkeypatch.setattr(threads, "others_cores", lambda: None)  # no /proc/stat: load average
    assert "load average 3.00" in threads.choose(None, "auto").reason


def test_child_environment_is_restored(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    policy = threads.choose(2, "off")
    with threads.child_environment(policy):
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["OMP_NUM_THREADS"] == "2"
    assert "OMP_WAIT_POLICY" not in os.environ and os.environ["OMP_NUM_THREADS"] == "7"
