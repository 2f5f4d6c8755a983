"""The thread policy: usable CPUs by default; on a quiet host every library's own idle-thread
default (nothing set for OpenMP), on a shared one every target's idle threads sleep alike; the
child's environment set only while it starts."""

from __future__ import annotations

import os

from resnest_bench.harness.measure import threads
from resnest_bench.harness.results.environment import CgroupLimits


def test_quota_capped_host_makes_every_target_sleep(monkeypatch):
    monkeypatch.setattr(threads, "cgroup_limits", lambda: CgroupLimits(cpu_quota_cores=1.5))
    monkeypatch.setattr(threads, "usable_cpus", lambda limits=None: 2)
    policy = threads.choose(None, "auto")
    assert policy.threads == 2 and policy.ort_spinning is False
    assert policy.omp_wait_policy == "PASSIVE"
    assert "host shared (cgroup CPU quota 1.5 cores)" in policy.reason
    on = threads.choose(3, "on")
    assert on.ort_spinning is True and on.omp_wait_policy is None
    assert "3 intra-op threads (--threads)" in on.reason


def test_quiet_host_keeps_each_librarys_default(monkeypatch):
    """Others' CPU use just before timing decides, not the load average our own export left."""
    monkeypatch.setattr(threads, "cgroup_limits", lambda: CgroupLimits())
    monkeypatch.setattr(threads, "usable_cpus", lambda limits=None: 4)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    monkeypatch.setattr(threads, "others_cores", lambda: 0.1)
    quiet = threads.choose(None, "auto")
    assert quiet.ort_spinning is True and quiet.omp_wait_policy is None
    assert threads.environment(quiet) == {"OMP_NUM_THREADS": "4"}
    monkeypatch.setattr(threads, "others_cores", lambda: 2.5)
    policy = threads.choose(None, "auto")
    assert policy.ort_spinning is False and policy.omp_wait_policy == "PASSIVE"
    assert "other processes used 2.50 of 4 CPUs" in policy.reason
    assert threads.choose(None, "off").omp_wait_policy == "PASSIVE"
    monkeypatch.setattr(threads, "others_cores", lambda: None)  # no /proc/stat: load average
    assert "load average 3.00" in threads.choose(None, "auto").reason


def test_child_environment_is_restored(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    with threads.child_environment(threads.choose(2, "off")):
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["OMP_NUM_THREADS"] == "2"
    assert "OMP_WAIT_POLICY" not in os.environ and os.environ["OMP_NUM_THREADS"] == "7"


def test_quiet_child_does_not_inherit_a_wait_policy(monkeypatch):
    """A PASSIVE left in the parent's environment must not reach a quiet host's targets."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    with threads.child_environment(threads.choose(2, "on")):
        assert "OMP_WAIT_POLICY" not in os.environ and os.environ["OMP_NUM_THREADS"] == "2"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
