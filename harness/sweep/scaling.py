"""`resnest-bench scaling SUITE --nproc 1,2,...`: the suite's training at each rank count on this
machine, then one table (scaling.md + scaling.json) with speed-up and efficiency against 1 rank.

Each rank count is a real `resnest-bench run SUITE --steps train --nproc N` (torchrun, a
published run of its own under ranks-N/); the table is read back from their result.json files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.report.scaling import render
from resnest_bench.harness.results import RunResult, read_result
from resnest_bench.harness.results.scaling import ScalingResult, ScalingRow
from resnest_bench.harness.results.training import TrainingRun
from resnest_bench.harness.store.atomic import atomic_write_json, atomic_write_text
from resnest_bench.harness.torchrun import cpu_threads, launch

SCALING_JSON, SCALING_MD = "scaling.json", "scaling.md"


def _published(folder: Path) -> RunResult:
    found = sorted(folder.glob("*/result.json"))
    if len(found) != 1:
        raise BenchError(f"{folder}: expected one published run, found {len(found)}")
    return read_result(found[0])


def _row(run: TrainingRun, base: TrainingRun, ranks: int, result: str) -> ScalingRow:
    summary, base_summary = run.summary, base.summary
    if summary.steady_epoch_s is None or summary.steady_images_per_s is None:
        raise BenchError("scaling needs at least 2 epochs (epoch 1 is warm-up, not timed)")
    speedup = summary.steady_images_per_s / (base_summary.steady_images_per_s or 1.0)
    dist = run.distributed
    return ScalingRow(
        model=run.model.name,
        ranks=ranks,
        batch_size=run.batch_size,
        global_batch_size=dist.global_batch_size if dist else run.batch_size,
        lr=dist.lr if dist else run.recipe.lr,
        epochs=len(run.epochs),
        epoch_s=summary.steady_epoch_s.median,
        images_per_s=summary.steady_images_per_s,
        rank_images_per_s=run.epochs[-1].rank_images_per_s or [],
        speedup=speedup,
        efficiency=speedup / ranks,
        final_test_top1=summary.final_test_top1,
        result=result,
    )


def run_scaling(
    suite: str, nprocs: Sequence[int], passthrough: Sequence[str], reports: Path
) -> Path:
    """Train `suite` at every rank count in `nprocs` (1 among them); return the study folder.
    `passthrough` is the rest of the command line, given to every `run`."""
    counts = sorted(set(nprocs))
    if not counts or counts[0] < 1 or 1 not in counts:
        raise BenchError(f"--nproc needs 1 (the baseline) and counts >= 1, got {list(nprocs)}")
    created = datetime.now(timezone.utc)
    out = reports / f"scaling-{created:%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=False)
    # Every rank gets the same CPU share at every count (as one GPU per rank would), so the
    # 1-rank baseline does not run with all cores while N ranks split them.
    threads = int(os.environ.get("OMP_NUM_THREADS") or cpu_threads(counts[-1]))
    before = list(os.getloadavg())
    results: dict[int, RunResult] = {}
    for ranks in counts:
        folder = out / f"ranks-{ranks}"
        argv = ["run", *passthrough, "--steps", "train", "--reports", str(folder)]
        launch(ranks, [*argv, "--nproc", str(ranks)], threads=threads)
        results[ranks] = _published(folder)
    after = list(os.getloadavg())
    base = {run.model.name: run for run in results[1].training.all_runs()}
    rows = [
        _row(run, base[run.model.name], ranks, f"ranks-{ranks}/{result.run_id}/result.json")
        for ranks, result in results.items()
        for run in result.training.all_runs()
    ]
    first = results[1]
    scaling = ScalingResult(
        created=created.isoformat(timespec="seconds"),
        command=["resnest-bench", "scaling", *passthrough, "--nproc", ",".join(map(str, counts))],
        suite=first.config.suite,
        device=first.config.device,
        device_name=first.training.all_runs()[0].accel.device_name,
        cpu_model=first.environment.cpu.model,
        threads_per_rank=threads,
        loadavg_before=before,
        loadavg_after=after,
        rows=rows,
    )
    atomic_write_json(out / SCALING_JSON, scaling.model_dump(mode="json"))
    atomic_write_text(out / SCALING_MD, render(scaling))
    return out


def without_nproc(given: list[str]) -> list[str]:
    """The `scaling` command line as every rank count's `run` takes it: without the command
    word and without --nproc 1,2,... (each run gets its own)."""
    words, rest = list(given), []
    words.remove("scaling")
    while words:
        word = words.pop(0)
        if word == "--nproc":
            words.pop(0)
        elif not word.startswith("--nproc="):
            rest.append(word)
    return rest
