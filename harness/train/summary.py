"""Per-epoch records -> the run's summary (the numbers the seed study's tables report)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from resnest_bench.harness.results.stats import Stats
from resnest_bench.harness.results.training import EpochRecord, TrainSummary

SLOW_EPOCH = 1.5  # an epoch slower than this x the steady median is flagged


def summarize(
    records: Sequence[EpochRecord], *, epochs_planned: int, target: float
) -> TrainSummary:
    """Epoch 1 (warm-up, compile, autotune) apart; steady state over the other epochs.

    Time to target is cumulative training time (evaluation excluded) at the first epoch whose
    test top-1 reaches `target`, as DAWNBench counts it.
    """
    steady = [r for r in records if not r.warmup]
    reached = next((r for r in records if r.test_top1 >= target), None)
    best = max(records, key=lambda r: r.test_top1) if records else None
    energies = [r.energy_j for r in records]
    mfus = [r.mfu for r in steady if r.mfu is not None]
    diverged = [r.epoch for r in records if not r.weights_finite]
    median_s = statistics.median(r.train_s for r in steady) if steady else None
    return TrainSummary(
        epochs_planned=epochs_planned,
        epochs_completed=len(records),
        first_epoch_s=records[0].train_s if records else None,
        steady_epoch_s=Stats.from_samples([r.train_s for r in steady]) if steady else None,
        steady_images_per_s=statistics.median(r.images_per_s for r in steady) if steady else None,
        steady_mfu=statistics.median(mfus) if mfus else None,
        target_top1=target,
        time_to_target_s=reached.cumulative_train_s if reached else None,
        epochs_to_target=reached.epoch if reached else None,
        best_test_top1=best.test_top1 if best else None,
        best_epoch=best.epoch if best else None,
        final_test_top1=records[-1].test_top1 if records else None,
        total_train_s=math.fsum(r.train_s for r in records),
        total_eval_s=math.fsum(r.eval_s for r in records),
        total_energy_j=(
            math.fsum(energies) if records and all(e is not None for e in energies) else None
        ),
        diverged_at_epoch=diverged[0] if diverged else None,
        slow_epochs=[r.epoch for r in steady if median_s and r.train_s > SLOW_EPOCH * median_s],
    )
