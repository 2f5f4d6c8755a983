"""Environment fingerprint: cgroup v1/v2 limits from fake trees, JSON-able output."""

from __future__ import annotations

import json

import pytest

from resnest_bench.harness.host import cgroups, envinfo
from resnest_bench.harness.host.cgroups import cgroup_limits, usable_cpus
from resnest_bench.harness.host.envinfo import fingerprint, peak_rss_bytes
from resnest_bench.harness.results.environment import CgroupLimits, Environment

UNLIMITED_V1 = "9223372036854771712"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.fixture
def no_proc(tmp_path):
    """A /proc/self/cgroup that does not exist: only the root controller dirs count."""
    return tmp_path / "no-such-proc-cgroup"


def test_v1_quota_and_memory(tmp_path, no_proc):
    root = tmp_path / "cg"
    write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "150000")
    write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000")
    write(root / "memory" / "memory.limit_in_bytes", str(4 * 2**30))
    limits = cgroup_limits(root, proc_cgroup=no_proc)
    assert limits == CgroupLimits(cpu_quota_cores=1.5, memory_bytes=4 * 2**30, version=1)


def test_v1_unlimited(tmp_path, no_proc):
    root = tmp_path / "cg"
    write(root / "cpu" / "cpu.cfs_quota_us", "-1")
    write(root / "cpu" / "cpu.cfs_period_us", "100000")
    write(root / "memory" / "memory.limit_in_bytes", UNLIMITED_V1)
    assert cgroup_limits(root, proc_cgroup=no_proc) == CgroupLimits(
        cpu_quota_cores=None, memory_bytes=None, version=1
    )


def test_v1_nested_cgroup_takes_tightest_limit(tmp_path):
    root = tmp_path / "cg"
    write(root / "memory" / "memory.limit_in_bytes", UNLIMITED_V1)
    write(root / "memory" / "docker" / "memory.limit_in_bytes", str(8 * 2**30))
    write(root / "memory" / "docker" / "abc" / "memory.limit_in_bytes", str(2 * 2**30))
    proc = tmp_path / "proc-cgroup"
    write(proc, "4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n0::/")
    limits = cgroup_limits(root, proc_cgroup=proc)
    assert limits.memory_bytes == 2 * 2**30 and limits.cpu_quota_cores is None


def test_v2_limits_and_max(tmp_path, no_proc):
    root = tmp_path / "cg"
    write(root / "cgroup.controllers", "cpu memory")
    write(root / "cpu.max", "250000 100000")
    write(root / "memory.max", "1073741824")
    assert cgroup_limits(root, proc_cgroup=no_proc) == CgroupLimits(
        cpu_quota_cores=2.5, memory_bytes=2**30, version=2
    )
    write(root / "cpu.max", "max 100000")
    write(root / "memory.max", "max")
    assert cgroup_limits(root, proc_cgroup=no_proc) == CgroupLimits(
        cpu_quota_cores=None, memory_bytes=None, version=2
    )


def test_v2_follows_own_path(tmp_path):
    root = tmp_path / "cg"
    write(root / "cgroup.controllers", "cpu memory")
    write(root / "user.slice" / "job" / "cpu.max", "50000 100000")
    proc = tmp_path / "proc-cgroup"
    write(proc, "0::/user.slice/job")
    assert cgroup_limits(root, proc_cgroup=proc).cpu_quota_cores == 0.5


def test_no_cgroup_tree(tmp_path, no_proc):
    assert cgroup_limits(tmp_path / "empty", proc_cgroup=no_proc) == CgroupLimits(
        cpu_quota_cores=None, memory_bytes=None, version=None
    )


def test_garbage_files_degrade_to_none(tmp_path, no_proc):
    root = tmp_path / "cg"
    write(root / "cgroup.controllers", "")
    write(root / "cpu.max", "lots")
    write(root / "memory.max", "-")
    assert cgroup_limits(root, proc_cgroup=no_proc) == CgroupLimits(
        cpu_quota_cores=None, memory_bytes=None, version=2
    )


def test_usable_cpus_caps_affinity_by_quota(monkeypatch):
    monkeypatch.setattr(cgroups, "affinity_count", lambda: 8)
    assert usable_cpus(CgroupLimits(cpu_quota_cores=1.5, memory_bytes=None, version=1)) == 2
    assert usable_cpus(CgroupLimits(cpu_quota_cores=0.2, memory_bytes=None, version=2)) == 1
    assert usable_cpus(CgroupLimits(cpu_quota_cores=None, memory_bytes=None, version=None)) == 8
    assert usable_cpus(CgroupLimits(cpu_quota_cores=32.0, memory_bytes=None, version=2)) == 8
    assert usable_cpus() >= 1


def test_peak_rss_is_bytes_and_at_least_current_rss():
    import psutil

    block = bytearray(64 * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    current = psutil.Process().memory_info().rss
    # A KiB/bytes mix-up would be off by 1024x in one direction or the other.
    assert current * 0.9 <= peak_rss_bytes() < current * 100
    del block


def test_fingerprint_is_json_and_uses_env(monkeypatch):
    monkeypatch.setenv("RESNEST_BENCH_GIT_COMMIT", "abc123")
    monkeypatch.setenv("RESNEST_BENCH_IMAGE", "resnest-bench-cpu")
    monkeypatch.setenv("RESNEST_BENCH_IMAGE_TAG", "0.1.0")
    fp = fingerprint(device="cpu")
    assert Environment.model_validate(json.loads(fp.model_dump_json())) == fp
    assert fp.git_commit == "abc123"
    assert fp.container.image == "resnest-bench-cpu"
    assert fp.container.tag == "0.1.0"
    assert fp.gpu is None
    assert fp.versions.torch and fp.versions.numpy
    assert fp.cpu.usable_cpus >= 1
    assert fp.python.version


def test_fingerprint_cuda_without_gpu_never_fails(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fingerprint(device="cuda:0").gpu is None


def test_cpuinfo_parsing(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    write(
        cpuinfo,
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel name\t: Test CPU "
        "9000\ncpu MHz\t\t: 2596.122\nflags\t\t: fpu avx2 avx512_vnni\nprocessor\t: 1\n"
        "cpu MHz\t\t: 3000.000\n",
    )
    info = envinfo._cpu_info(cpuinfo)
    assert info == {
        "model": "Test CPU 9000",
        "isa_flags": ["avx2", "avx512_vnni"],
        "vendor": "AuthenticAMD",
        "family": 26,
        "mhz": 2596.122,
    }


def test_git_commit_from_repo_then_none(tmp_path, monkeypatch):
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git not installed")
    monkeypatch.delenv("RESNEST_BENCH_GIT_COMMIT", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    monkeypatch.setattr(envinfo, "_REPO_DIR", repo)
    assert envinfo._git_commit() == head.strip()
    monkeypatch.setattr(envinfo, "_REPO_DIR", tmp_path / "not-a-repo")
    assert envinfo._git_commit() is None
