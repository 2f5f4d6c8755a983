"""One target (a runtime on one artifact) measured in its own freshly spawned process.

A fresh interpreter per target makes its cold start (imports done, nothing cached) and its peak
RSS its own. Inside that process, in order: load (timed), first inference (timed apart),
batch-1 latency (MLPerf SingleStream style, through the timing loop), throughput at larger
batches, then one pass over the test set: batch 1 and timed per image for the first
`timed_images` images (the seed's "average time per image"), untimed batches for the rest,
giving top-1 on the full and the small set. The logits go back for agreement and the demo.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnest_bench.harness.build.gate import top1_percent
from resnest_bench.harness.config import DeploySection
from resnest_bench.harness.data import ImageSet, normalize
from resnest_bench.harness.envinfo import peak_rss_bytes
from resnest_bench.harness.measure.timing import measure
from resnest_bench.harness.results.deployment import Target, Throughput
from resnest_bench.harness.runtimes import get_runtime

EVAL_BATCH = 32  # batch of the untimed part of the test-set pass (and of reference logits)


@dataclass(frozen=True)
class Job:
    """Everything a spawned measurement process needs (picklable)."""

    target: str
    runtime: str
    artifact: str
    path: Path
    test: ImageSet
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    section: DeploySection
    small_subset: int


def spawned(job: Job) -> tuple[Target, np.ndarray]:
    """measure_target in a fresh interpreter (spawn: no inherited threads, caches or memory)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure_target, job).result()


def measure_target(job: Job) -> tuple[Target, np.ndarray]:
    """Measure one target in this process; returns it with its test-set logits."""
    import psutil

    section = job.section
    x = normalize(job.test.images, job.mean, job.std).numpy()
    labels = job.test.labels.numpy()
    runtime = get_runtime(job.runtime, threads=section.threads)
    rss_before = psutil.Process().memory_info().rss

    start = time.perf_counter()
    runtime.load(job.path)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    runtime.run(x[:1])
    first_s = time.perf_counter() - start

    singles = itertools.cycle([x[i : i + 1] for i in range(len(x))])
    latency = measure(lambda: runtime.run(next(singles)), section.timing)
    throughput = {}
    for batch in section.throughput_batches:
        chunks = itertools.cycle(_batches(x, batch, whole=True))
        stats = measure(lambda chunks=chunks: runtime.run(next(chunks)), section.timing)
        throughput[str(batch)] = Throughput(
            images_per_s=batch / stats.median, batch_ms=stats.scaled(1e3)
        )

    timed_n = len(x) if section.timed_images is None else min(section.timed_images, len(x))
    small_n = min(job.small_subset, len(x))
    times, outputs = [], []
    for i in range(max(timed_n, small_n)):
        start = time.perf_counter()
        outputs.append(runtime.run(x[i : i + 1]))
        times.append(time.perf_counter() - start)
    rest = x[len(outputs) :]
    outputs += [runtime.run(chunk) for chunk in _batches(rest, EVAL_BATCH, whole=False)]
    logits = np.concatenate(outputs).astype(np.float32)
    target = Target(
        target=job.target,
        runtime=job.runtime,
        artifact=job.artifact,
        status="ok",
        threads=runtime.threads,
        load_s=load_s,
        first_inference_s=first_s,
        latency_ms=latency.scaled(1e3),
        throughput=throughput,
        images_timed=timed_n,
        avg_ms_per_image=float(np.mean(times[:timed_n]) * 1e3),
        avg_ms_per_image_small=float(np.mean(times[:small_n]) * 1e3),
        top1_full=top1_percent(logits, labels),
        top1_small=top1_percent(logits[:small_n], labels[:small_n]),
        images_full=len(labels),
        images_small=small_n,
        rss_before_load_bytes=rss_before,
        peak_rss_bytes=_own_peak_rss(),
    )
    return target, logits


def _own_peak_rss() -> int:
    """Peak RSS of this process image. Linux's ru_maxrss (envinfo.peak_rss_bytes) carries the
    parent's peak across fork+exec, so a spawned child reads VmHWM, which exec resets."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss_bytes()


def _batches(x: np.ndarray, size: int, *, whole: bool) -> list[np.ndarray]:
    """Consecutive slices of `size`; whole=True drops a short tail (and repeats x if too few)."""
    if whole and len(x) < size:
        x = np.concatenate([x] * (size // len(x) + 1))
    stop = len(x) - len(x) % size if whole else len(x)
    return [x[i : i + size] for i in range(0, stop, size)]
