"""What this process may use, read from the cgroup files themselves: a CPU quota or memory limit
is invisible to os.cpu_count() and psutil, and a container is where the limits matter most.
Nothing here may fail a run: every probe degrades to None."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from resnest_bench.harness.results.environment import CgroupLimits

# Kernels report "no memory limit" as a huge page-aligned number near 2**63.
_UNLIMITED_BYTES = 2**62


def read_probe(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _self_cgroup_paths(proc_cgroup: Path) -> dict[str, str]:
    """Map controller ("cpu", "memory"; "" for v2) -> this process's path in that hierarchy."""
    paths: dict[str, str] = {}
    for line in (read_probe(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2]
    return paths


def _candidate_dirs(base: Path, self_path: str | None) -> list[Path]:
    """The controller dir and every ancestor of our own cgroup beneath it (limits nest)."""
    dirs = [base]
    current = base
    for part in (self_path or "").strip("/").split("/"):
        if not part:
            continue
        current = current / part
        if not current.is_dir():
            break
        dirs.append(current)
    return dirs


def _min_or_none(values: list[float | int | None]) -> Any:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _parse_bytes(text: str | None) -> int | None:
    if text is None or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 < value < _UNLIMITED_BYTES else None


def _v1_cpu_quota(directory: Path) -> float | None:
    try:
        quota = int(read_probe(directory / "cpu.cfs_quota_us") or "")
        period = int(read_probe(directory / "cpu.cfs_period_us") or "")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v2_cpu_quota(directory: Path) -> float | None:
    fields = (read_probe(directory / "cpu.max") or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_controller_dir(root: Path, name: str) -> Path | None:
    """v1 mounts cpu as "cpu", "cpu,cpuacct" or "cpuacct,cpu" depending on the distribution."""
    for entry in (name, f"{name},cpuacct", f"cpuacct,{name}"):
        if (root / entry).is_dir():
            return root / entry
    return None


def cgroup_limits(
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
    *,
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
) -> CgroupLimits:
    """CPU quota (cores) and memory limit of this process's cgroup, v1 or v2."""
    base = Path(root)
    own = _self_cgroup_paths(Path(proc_cgroup))
    if (base / "cgroup.controllers").is_file():
        dirs = _candidate_dirs(base, own.get(""))
        return CgroupLimits(
            cpu_quota_cores=_min_or_none([_v2_cpu_quota(d) for d in dirs]),
            memory_bytes=_min_or_none([_parse_bytes(read_probe(d / "memory.max")) for d in dirs]),
            version=2,
        )
    cpu_dir = _v1_controller_dir(base, "cpu")
    mem_dir = base / "memory" if (base / "memory").is_dir() else None
    if cpu_dir is None and mem_dir is None:
        return CgroupLimits(cpu_quota_cores=None, memory_bytes=None, version=None)
    quota = None
    if cpu_dir is not None:
        quota = _min_or_none([_v1_cpu_quota(d) for d in _candidate_dirs(cpu_dir, own.get("cpu"))])
    memory = None
    if mem_dir is not None:
        memory = _min_or_none(
            [
                _parse_bytes(read_probe(d / "memory.limit_in_bytes"))
                for d in _candidate_dirs(mem_dir, own.get("memory"))
            ]
        )
    return CgroupLimits(cpu_quota_cores=quota, memory_bytes=memory, version=1)


def _inactive_file(directory: Path) -> int:
    for line in (read_probe(directory / "memory.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key in ("inactive_file", "total_inactive_file") and value.isdigit():
            return int(value)
    return 0


def memory_room(
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
    *,
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
) -> int | None:
    """Bytes this process's memory budget still has: the tightest cgroup limit less what the
    cgroup uses now (v2 memory.max/memory.current, v1 limit_in_bytes/usage_in_bytes), else
    the host's available memory; None when neither can be read."""
    base = Path(root)
    own = _self_cgroup_paths(Path(proc_cgroup))
    if (base / "cgroup.controllers").is_file():
        pairs = [("memory.max", "memory.current", d) for d in _candidate_dirs(base, own.get(""))]
    elif (base / "memory").is_dir():
        dirs = _candidate_dirs(base / "memory", own.get("memory"))
        pairs = [("memory.limit_in_bytes", "memory.usage_in_bytes", d) for d in dirs]
    else:
        pairs = []
    rooms = []
    for limit_file, usage_file, directory in pairs:
        limit = _parse_bytes(read_probe(directory / limit_file))
        usage = _parse_bytes(read_probe(directory / usage_file))
        if limit is not None and usage is not None:
            # page cache the kernel drops before it kills anything is room too (docker stats
            # subtracts it the same way)
            rooms.append(max(0, limit - usage + _inactive_file(directory)))
    if rooms:
        return min(rooms)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def affinity_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def usable_cpus(limits: CgroupLimits | None = None) -> int:
    """CPUs this process may really use: affinity capped by the cgroup quota, at least 1."""
    limits = limits if limits is not None else cgroup_limits()
    count = affinity_count()
    if limits.cpu_quota_cores is not None:
        count = min(count, math.ceil(limits.cpu_quota_cores))
    return max(1, count)
