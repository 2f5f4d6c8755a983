"""How busy the host was while we timed, and whether a row's figures agree with each other.

These machines are shared: a neighbour's load swung PyTorch eager batch-1 latency from 83 to
2,412 ms here. Two guards make such a run visible instead of printing it as a headline:
- the host's load over the timed interval: load average, CPU time used by processes other than
  ours (from /proc/stat minus our own process tree), steal time and CPU frequency;
- a row cross-check: batch-1 p50 against the per-image average over the test set (also batch 1,
  so they must agree).
Linux only where /proc is read; elsewhere the fields are None and the verdict says "unknown".
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

# Other processes using more CPU than this (cores, averaged over the interval) make a run busy.
BUSY_OTHER_CORES = 0.5
# Steal above this share of CPU time means the hypervisor took the cores away.
BUSY_STEAL = 0.05
# Batch-1 p50 vs the batch-1 average over the test set: both batch 1, so beyond this they disagree.
ROW_SINGLE_TOLERANCE = 1.5


class HostSnapshot(BaseModel):
    """Counters at one instant (seconds are CPU seconds summed over cores)."""

    model_config = ConfigDict(frozen=True)

    wall_s: float
    load_1m: float | None
    busy_s: float | None  # every process, from /proc/stat (non-idle, non-iowait, no steal)
    steal_s: float | None
    total_s: float | None
    own_s: float  # this process and its children, alive or reaped
    cpu_mhz: float | None


class HostLoad(BaseModel):
    """What the host did between two snapshots, and the verdict."""

    model_config = ConfigDict(frozen=True)

    seconds: float
    load_1m_before: float | None
    load_1m_after: float | None
    other_cores: float | None  # CPU used by processes other than ours, in cores
    steal_fraction: float | None
    cpu_mhz_min: float | None
    cpu_mhz_max: float | None
    busy: bool | None  # None: not measurable here
    reason: str


def _proc_stat() -> tuple[float, float, float] | None:
    """(busy, steal, total) CPU seconds of the whole host, or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(v) for v in fields]
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq = ticks[:7]
    steal = ticks[7] if len(ticks) > 7 else 0
    busy = user + nice + system + irq + softirq
    return busy / hz, steal / hz, (busy + idle + iowait + steal) / hz


def _cpu_mhz() -> float | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    speeds = [float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
    return sum(speeds) / len(speeds) if speeds else None


def _own_cpu_s() -> float:
    import psutil

    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        try:
            ct = child.cpu_times()
        except psutil.Error:  # gone between listing and reading: counted when reaped
            continue
        total += ct.user + ct.system
    return total


def snapshot() -> HostSnapshot:
    stat = _proc_stat()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return HostSnapshot(
        wall_s=time.monotonic(),
        load_1m=load,
        busy_s=stat[0] if stat else None,
        steal_s=stat[1] if stat else None,
        total_s=stat[2] if stat else None,
        own_s=_own_cpu_s(),
        cpu_mhz=_cpu_mhz(),
    )


def host_load(before: HostSnapshot, after: HostSnapshot) -> HostLoad:
    """The load between two snapshots; busy when others used > BUSY_OTHER_CORES cores on
    average or steal exceeded BUSY_STEAL."""
    seconds = max(after.wall_s - before.wall_s, 1e-9)
    other = steal = None
    if before.busy_s is not None and after.busy_s is not None:
        own = after.own_s - before.own_s
        other = max(0.0, (after.busy_s - before.busy_s) - own) / seconds
        total = (after.total_s or 0.0) - (before.total_s or 0.0)
        steal = (after.steal_s - before.steal_s) / total if total > 0 else 0.0
    speeds = [s for s in (before.cpu_mhz, after.cpu_mhz) if s is not None]
    if other is None:
        busy, reason = None, "host load not measurable here (no /proc/stat)"
    elif other > BUSY_OTHER_CORES:
        busy, reason = True, f"other processes used {other:.2f} cores while we timed"
    elif steal is not None and steal > BUSY_STEAL:
        busy, reason = True, f"the hypervisor stole {100 * steal:.0f}% of CPU time"
    else:
        busy, reason = False, f"quiet: other processes used {other:.2f} cores"
    return HostLoad(
        seconds=seconds,
        load_1m_before=before.load_1m,
        load_1m_after=after.load_1m,
        other_cores=other,
        steal_fraction=steal,
        cpu_mhz_min=min(speeds) if speeds else None,
        cpu_mhz_max=max(speeds) if speeds else None,
        busy=busy,
        reason=reason,
    )


def row_disagreement(p50_ms: float | None, avg_ms_per_image: float | None) -> str | None:
    """Why a target's two batch-1 figures (p50 of the timed queries, the average over the test
    set) contradict each other, or None when they agree. Batched figures are not compared:
    on small feature maps (an ImageNet stem on 32x32 images) batching legitimately gains 7x."""
    if p50_ms is None or p50_ms <= 0 or not avg_ms_per_image:
        return None
    ratio = max(p50_ms, avg_ms_per_image) / min(p50_ms, avg_ms_per_image)
    if ratio > ROW_SINGLE_TOLERANCE:
        return (
            f"batch-1 p50 {p50_ms:.1f} ms vs {avg_ms_per_image:.1f} ms per image over the "
            f"test set ({ratio:.1f}x apart, tolerance {ROW_SINGLE_TOLERANCE}x)"
        )
    return None
