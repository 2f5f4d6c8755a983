"""The harness's batch-1 p50 against a bare loop over the same ONNX Runtime session.

    python -m pytest benchmarks/micro/test_bench_harness_overhead.py --benchmark-enable

The harness adds a pipe round-trip per round, a cycle over test images and the timing loop's
bookkeeping; none of it may show in the figure. On a quiet host the two medians must sit
within 5%; on a busy one (harness.host.load) the comparison means nothing and is skipped.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.config import TimingSection
from resnest_bench.harness.data import load_dataset
from resnest_bench.harness.host import load as hostload
from resnest_bench.harness.measure import threads
from resnest_bench.harness.measure.target import Job, Worker

TIMING = TimingSection(warmup=20, min_iters=300, min_seconds=2.0)
TOLERANCE = 0.05


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> Worker:
    root = tmp_path_factory.mktemp("overhead")
    data = load_dataset("synthetic", root=root, train_subset=32, test_subset=64, image_size=32)
    torch.manual_seed(0)
    model = models.create_model("resnest-tiny").eval()
    path = root / "model.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, 32, 32), path, dynamo=False, dynamic_axes=None)
    job = Job(
        target="ort-cpu:fp32",
        runtime="ort-cpu",
        artifact="onnx_fp32",
        path=path,
        test=data.test,
        mean=data.mean,
        std=data.std,
        policy=threads.choose(1, "auto"),
        warmup=TIMING.warmup,
    )
    loaded = Worker(job)
    loaded.load()
    return loaded


def test_harness_p50_matches_a_bare_loop(worker: Worker, benchmark) -> None:
    session, name = worker.runtime.session, worker.runtime.input_name
    x = worker.x[:1]

    def bare() -> list[float]:
        times = []
        for _ in range(TIMING.min_iters):
            start = time.perf_counter()
            session.run(None, {name: x})
            times.append(time.perf_counter() - start)
        return times

    before = hostload.snapshot()
    bare_p50 = statistics.median(benchmark.pedantic(bare, rounds=1, iterations=1))
    harness_p50 = statistics.median(worker.round(TIMING))
    bare_again = statistics.median(bare())
    load = hostload.host_load(before, hostload.snapshot())
    reference = statistics.median([bare_p50, bare_again])
    gap = harness_p50 / reference - 1
    print(
        f"harness p50 {harness_p50 * 1e3:.3f} ms, bare loop p50 {reference * 1e3:.3f} ms "
        f"({100 * gap:+.1f}%); host: {load.reason}"
    )
    if load.busy:
        pytest.skip(f"host busy, comparison meaningless: {load.reason}")
    assert abs(gap) <= TOLERANCE
