"""The CPU thread policy every measured runtime follows: what its users get, unless the host
is shared, and then the same protection for every target.

On a quiet host each target runs as its own users run it: intra-op threads = the CPUs this
process may really use (affinity and cgroup quota), ONNX Runtime's workers spinning (its
default) and OpenMP's wait policy left unset (torch's default). Forcing OMP_WAIT_POLICY=PASSIVE
there made PyTorch eager 1.2-2.5x slower than a plain loop and inflated every "x eager".
On a shared or quota-capped host, idle threads that spin burn the cores the other threads
need (ORT int8 1.8x and fp32 4.6x slower, eager 83-2,412 ms instead of 48 ms), so there every
target's idle threads sleep: ORT spinning off and OpenMP PASSIVE alike, said in the report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from resnest_bench.harness.host import load as hostload
from resnest_bench.harness.host.cgroups import cgroup_limits, usable_cpus
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


def thread_count(threads: int | None) -> int:
    """The intra-op threads of every deploy target and of the export's checks: the suite's
    `threads`, else the usable CPUs."""
    return threads if threads is not None else usable_cpus()


def choose(threads: int | None, spinning: Literal["on", "off", "auto"]) -> ThreadPolicy:
    """The policy for this run, the same for every target. `threads` None -> usable CPUs.
    Idle threads keep each library's default (ORT spins, OpenMP's wait policy unset) unless
    the host is shared (spinning auto) or `spinning` is "off": then every target's idle
    threads sleep (ORT spinning off and OMP_WAIT_POLICY=PASSIVE), so no target is protected
    at another's cost."""
    count = thread_count(threads)
    why = f"{count} intra-op threads ({'--threads' if threads else 'usable CPUs'})"
    if spinning == "auto":
        shared = shared_reason(count)
        spin = shared is None
        why += "; host not shared: " if spin else f"; host shared ({shared}): "
    else:
        spin = spinning == "on"
        why += f"; --spinning {spinning}: "
    why += (
        "every library's default idle-thread behaviour (ORT spins, OpenMP wait policy unset)"
        if spin
        else "idle threads sleep in every target (ORT spinning off, OMP_WAIT_POLICY=PASSIVE)"
    )
    return ThreadPolicy(
        threads=count,
        ort_spinning=spin,
        omp_wait_policy=None if spin else "PASSIVE",
        reason=why,
    )


# Measured for issue 19 on a 2-core host at load ~9: one CPU training epoch took 335 s with 2
# threads and 15-20 s with 1 (same command): threads waiting on each other's preempted cores
# stall.
SHARED_TRAINING_THREADS = 1


def training_threads(requested: int | None) -> tuple[int, str]:
    """Intra-op threads for CPU training and why: the suite's `threads`, else the usable CPUs
    on a quiet host and one thread on a shared one."""
    if requested is not None:
        return requested, f"{requested} threads (the suite's train.threads)"
    count = usable_cpus()
    shared = shared_reason(count)
    if shared is None:
        return count, f"{count} threads (usable CPUs; host not shared)"
    return SHARED_TRAINING_THREADS, (
        f"{SHARED_TRAINING_THREADS} thread: host shared ({shared}), where threads that wait on "
        "each other's preempted cores stall"
    )


def environment(policy: ThreadPolicy) -> dict[str, str]:
    """The variables a measuring process starts with under `policy` (OpenMP reads them once,
    when torch is imported); OMP_WAIT_POLICY only where the policy sets one."""
    wanted = {"OMP_NUM_THREADS": str(policy.threads)}
    if policy.omp_wait_policy is not None:
        wanted["OMP_WAIT_POLICY"] = policy.omp_wait_policy
    return wanted


@contextmanager
def child_environment(policy: ThreadPolicy) -> Iterator[None]:
    """Environment a spawned measurement process starts with (OpenMP reads it once, at import
    of torch): set while the child is started, restored after."""
    wanted = environment(policy)
    saved = {key: os.environ.get(key) for key in (*wanted, "OMP_WAIT_POLICY")}
    os.environ.pop("OMP_WAIT_POLICY", None)  # a quiet host's targets get OpenMP's default
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
