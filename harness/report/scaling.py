"""scaling.md from a ScalingResult: one table per study, the machine and its load beside it."""

from __future__ import annotations

from resnest_bench.harness.report.markdown import escaped, num, pct, table
from resnest_bench.harness.results.scaling import ScalingResult


def render(result: ScalingResult) -> str:
    """scaling.md's text; every string from the record is escaped."""
    result = escaped(result)
    head = ["model", "ranks", "batch/rank", "global batch", "lr", "s/epoch", "images/s"]
    head += ["per-rank images/s", "speed-up", "efficiency", "final top-1"]
    rows = [
        [
            row.model,
            str(row.ranks),
            str(row.batch_size),
            str(row.global_batch_size),
            num(row.lr, 4),
            num(row.epoch_s, 3),
            f"{row.images_per_s:,.1f}",
            " / ".join(f"{v:,.1f}" for v in row.rank_images_per_s),
            f"{row.speedup:.2f}x",
            pct(row.efficiency, 1),
            pct(row.final_test_top1),
        ]
        for row in result.rows
    ]
    load = ", ".join(
        f"{' '.join(f'{v:.2f}' for v in avg)} ({when})"
        for avg, when in ((result.loadavg_before, "before"), (result.loadavg_after, "after"))
    )
    device = "" if result.device == "cpu" else f"{result.device_name} ({result.device}), "
    return "\n".join(
        [
            f"# Data-parallel scaling: {result.suite}",
            "",
            f"Measured {result.created} on {device}CPU {result.cpu_model or 'unknown'} "
            f"({result.threads_per_rank} CPU thread(s) per rank); load average {load}.",
            "",
            "Steady-state epochs (epoch 1 excluded); s/epoch is the slowest rank's; speed-up is "
            "images/s against the 1-rank run of the same suite on this machine, efficiency "
            "= speed-up / ranks; per-rank images/s are each rank's own in the last epoch. The "
            "per-rank batch is fixed, so the global batch grows with the ranks (weak scaling).",
            "",
            table(head, rows),
            "",
            f"Command: `{' '.join(result.command)}`",
            "",
        ]
    )
