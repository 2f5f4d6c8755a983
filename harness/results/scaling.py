"""A data-parallel scaling study: the same training at 1, 2, ... N ranks on one machine.

Rows as MLPerf and DAWNBench readers expect them: ranks, global batch, seconds per epoch,
images/s, speed-up and efficiency against the 1-rank row (throughput, steady-state epochs:
epoch 1 (warm-up) excluded). No torch here.
"""

from __future__ import annotations

from pydantic import Field

from resnest_bench.harness.results.record import Record


class ScalingRow(Record):
    """One model at one rank count; `result` is that run's result.json (relative path)."""

    model: str
    ranks: int
    batch_size: int  # per rank
    global_batch_size: int
    lr: float  # after the suite's lr_scaling rule
    epochs: int
    epoch_s: float  # median steady-state epoch (slowest rank)
    images_per_s: float  # all ranks together, steady state
    rank_images_per_s: list[float] = Field(default_factory=list)  # last epoch, per rank
    speedup: float  # images_per_s / the 1-rank row's
    efficiency: float  # speedup / ranks
    final_test_top1: float | None
    result: str


class ScalingResult(Record):
    """The table and where it was measured (the host's CPU, its load before and after)."""

    created: str
    command: list[str]
    suite: str
    device: str
    device_name: str
    cpu_model: str | None
    threads_per_rank: int  # OMP_NUM_THREADS of every run: the same CPU share per rank
    loadavg_before: list[float]
    loadavg_after: list[float]
    rows: list[ScalingRow]
