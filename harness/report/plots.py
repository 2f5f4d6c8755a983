"""Plots of a run: accuracy per epoch, latency per target, and accuracy against latency.

matplotlib is imported inside each function (Agg, no display): a report without plots, and
every import of the report package, stays light."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from resnest_bench.harness.report.deployment import latency_series
from resnest_bench.harness.report.labels import (
    block_label,
    model_and_stem,
    synthetic_label,
    threads_text,
)
from resnest_bench.harness.report.verdict import top1_limit
from resnest_bench.harness.results import RunResult
from resnest_bench.harness.results.deployment import Deployment
from resnest_bench.harness.results.training import TrainingRun
from resnest_bench.harness.store.atomic import atomic_write_bytes

ACCURACY_PLOT = "accuracy.png"


LATENCY_PLOT = "latency.png"


TRADEOFF_PLOT = "tradeoff.png"


def save_figure(figure: Any, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def plot_accuracy(runs: list[TrainingRun], path: Path, title: str) -> None:
    """Test top-1 per epoch for each training run (the seed's Figures 7 and 8)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6, 3.6))
    axes = figure.subplots()
    for run in runs:
        epochs = run.epochs
        axes.plot(
            [e.epoch for e in epochs],
            [100 * e.test_top1 for e in epochs],
            marker="o" if len(epochs) < 20 else None,
            label=f"{block_label(run)} on {run.dataset.name}",
        )
    epochs = sorted({e.epoch for run in runs for e in run.epochs})
    if len(epochs) <= 20:
        axes.set_xticks(epochs)
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("test top-1 (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    save_figure(figure, path)


def plot_latency(deployment: Deployment, path: Path, title: str) -> None:
    """Batch-1 latency per target on a log axis: median bar, whisker to p99, each bar labelled
    with its median and its own number of calls."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    bars = latency_series(deployment)
    figure = Figure(figsize=(7, 1.0 + 0.5 * len(bars)))
    axes = figure.subplots()
    medians = [b.median for b in bars]
    whiskers = [[0.0] * len(bars), [b.top - b.median for b in bars]]
    axes.barh([b.target for b in bars], medians, xerr=whiskers, capsize=3, color="#4c72b0")
    axes.set_xscale("log")
    for y, bar in enumerate(bars):
        axes.annotate(
            f" {bar.median:.3g} ms (n={bar.n})",
            (bar.median, y),
            xytext=(4, 6),
            textcoords="offset points",
            fontsize=8,
        )
    axes.set_xlim(min(medians) / 2, max(b.top for b in bars) * 3)
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axes.xaxis.set_major_formatter(plain)
    axes.xaxis.set_minor_formatter(
        FuncFormatter(lambda v, _: f"{v:g}" if str(v)[0] in "25" else "")
    )
    axes.tick_params(axis="x", which="minor", labelsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("batch-1 latency, ms, log scale (bar: median; whisker: up to p99)")
    axes.set_title(title, fontsize=9)
    axes.grid(axis="x", which="both", alpha=0.3)
    save_figure(figure, path)


def plot_tradeoff(deployment: Deployment, path: Path, title: str) -> None:
    """Speed-up vs eager against test top-1, one point per target (the seed's trade-off); each
    label in a column beside the plot with a line to its point, the int8 limit drawn."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    points = [t for t in deployment.ok_targets() if t.speedup and t.top1_full is not None]
    figure = Figure(figsize=(7.5, 1.5 + 0.3 * max(len(points), 8)))
    axes = figure.subplots()
    for t in points:
        ratio = t.speedup
        axes.errorbar(
            ratio.median,
            t.top1_full,
            xerr=[[ratio.median - ratio.low], [ratio.high - ratio.median]],
            fmt="x" if deployment.flag(t) else "o",
            capsize=3,
        )
    accuracies = [t.top1_full for t in points]
    against = points[0].speedup.against if points else None  # eager, or its stand-in
    reference = next((t for t in points if t.target == against), None)
    limit = top1_limit(deployment)
    lows = accuracies[:]
    if reference is not None:
        floor = reference.top1_full - limit
        axes.axhline(floor, color="#c44e52", linestyle="--", lw=0.8)
        axes.annotate(
            f"int8 limit: {limit:g} pts below eager fp32",
            xy=(0.01, floor),
            xycoords=("axes fraction", "data"),
            xytext=(0, -10),
            textcoords="offset points",
            fontsize=7,
            color="#c44e52",
        )
        lows.append(floor)
    if accuracies:
        low, high = min(lows), max(accuracies)
        pad = max(0.0, MIN_TOP1_SPAN_PTS - (high - low)) / 2 + 0.1 * (high - low) + 0.2
        axes.set_ylim(low - pad, high + pad)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axes.set_xlabel("speed-up vs PyTorch eager, log scale (median of rounds; bar: range)")
    axes.set_ylabel("test top-1 (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.margins(x=0.15)
    # labels in a column right of the plot, ordered by the angle at which each point is seen
    # from the column's middle: the lines fan out and do not cross
    axes.autoscale_view()
    to_axes = axes.transData + axes.transAxes.inverted()
    seen = {
        t.target: math.atan2(y - 0.5, 1.03 - x)
        for t in points
        for x, y in [to_axes.transform((t.speedup.median, t.top1_full))]
    }
    ordered = sorted(points, key=lambda t: -seen[t.target])
    for i, t in enumerate(ordered):
        axes.annotate(
            f"{t.target}{' [FLAGGED]' if deployment.flag(t) else ''}",
            xy=(t.speedup.median, t.top1_full),
            xytext=(1.03, 1 - (i + 0.5) / len(ordered)),
            textcoords="axes fraction",
            va="center",
            fontsize=8,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"},
        )
    save_figure(figure, path)


def plot_title(result: RunResult, what: str) -> str:
    """What, then model/stem/data/threads, SYNTHETIC when it is (call counts are per target,
    on the plot itself)."""
    data = result.config.settings.get("data", {})
    threads = threads_text(result)
    return (
        f"{what}{synthetic_label(result)}\n{model_and_stem(result)}, {data.get('dataset', '?')}"
        f"{f', {threads} threads' if threads else ''}"
    )


# The accuracy axis spans at least this many points, so that one image's difference on a small
# test set does not fill the plot.
MIN_TOP1_SPAN_PTS = 2.0
