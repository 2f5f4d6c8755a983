"""The CPU thread policy every measured runtime follows, chosen for shared hosts on purpose.

On a shared or quota-capped host, idle worker threads that spin (ONNX Runtime's default) or
busy-wait in OpenMP (torch's libgomp with an ACTIVE wait policy) burn the cores the other
threads need: here that made ORT int8 1.8x and ORT fp32 4.6x slower, and PyTorch eager
83-2,412 ms instead of 48 ms. So: intra-op threads = the CPUs this process may really use
(affinity and cgroup quota), ORT spinning off unless the host is ours alone, OpenMP PASSIVE.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from resnest_bench.harness import hostload
from resnest_bench.harness.envinfo import cgroup_limits, usable_cpus
from resnest_bench.harness.results.deployment import ThreadPolicy

# Others using more than this share of the usable CPUs just before timing: someone else runs.
SHARED_LOAD_SHARE = 0.5
# How long to watch other processes before timing. Not the 1-minute load average: it still
# counts the export and quantization this run did a moment ago, and called a quiet host shared.
LOOK_S = 2.0


def others_cores(look_s: float = LOOK_S) -> float | None:
    """CPU cores used by processes other than ours over the next `look_s` seconds (None where
    /proc/stat cannot be read)."""
    before = hostload.snapshot()
    time.sleep(look_s)
    return hostload.host_load(before, hostload.snapshot()).other_cores


def shared_reason(threads: int) -> str | None:
    """Why this host counts as shared (quota-capped, fewer usable than present, or others
    running), or None when it looks like ours alone."""
    limits = cgroup_limits()
    usable = usable_cpus(limits)
    if limits.cpu_quota_cores is not None:
        return f"cgroup CPU quota {limits.cpu_quota_cores:g} cores"
    if usable < (os.cpu_count() or usable):
        return f"{usable} of {os.cpu_count()} CPUs usable"
    limit = SHARED_LOAD_SHARE * max(usable, threads)
    others = others_cores()
    if others is not None:
        if others > limit:
            return f"other processes used {others:.2f} of {usable} CPUs just before timing"
        return None
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    if load > limit:
        return f"load average {load:.2f} on {usable} CPUs before timing"
    return None


def choose(threads: int | None, spinning: Literal["on", "off", "auto"]) -> ThreadPolicy:
    """The policy for this run: `threads` None -> usable CPUs; spinning auto -> off when shared."""
    count = threads if threads is not None else usable_cpus()
    why = f"{count} intra-op threads ({'--threads' if threads else 'usable CPUs'})"
    if spinning == "auto":
        shared = shared_reason(count)
        spin = shared is None
        why += f"; ORT spinning {'on: host not shared' if spin else 'off: ' + shared}"
    else:
        spin = spinning == "on"
        why += f"; ORT spinning {spinning} (--spinning)"
    return ThreadPolicy(
        threads=count,
        ort_spinning=spin,
        omp_wait_policy="PASSIVE",
        reason=why + "; OpenMP wait policy PASSIVE (idle threads sleep)",
    )


@contextmanager
def child_environment(policy: ThreadPolicy) -> Iterator[None]:
    """Environment a spawned measurement process starts with (OpenMP reads it once, at import
    of torch): set while the child is started, restored after."""
    wanted = {
        "OMP_WAIT_POLICY": policy.omp_wait_policy,
        "OMP_NUM_THREADS": str(policy.threads),
    }
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
