"""report.md and plots, rendered from a RunResult (never from live objects).

The first screen answers the question: whether the figures can be trusted, what to ship, and
one summary table (speed-up, accuracy and its change, size, memory, verdict per target);
details and the seed study's numbered tables follow. SYNTHETIC data is named in the title,
every section and every plot.

Rendering only reads the result, so `resnest-bench report result.json` can rebuild a report
years later, and compare uses the same building blocks. Sections follow the seed study:
Table 2 (accuracy per block), Table 3 (seconds per epoch), Table 4 (per-class scores of one
image), Table 5 (runtime comparison), plus what the seed did not measure.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from resnest_bench.harness.report import markdown as md
from resnest_bench.harness.report.deployment import (
    ABBREVIATIONS,
    deployment_section,
    headline,
    latency_series,
    outcome_text,
    reference_line,
    summary_table,
    top1_limit,
    trust_line,
)
from resnest_bench.harness.results import RunResult
from resnest_bench.harness.results.deployment import Deployment
from resnest_bench.harness.results.environment import Environment
from resnest_bench.harness.results.training import TrainingRun
from resnest_bench.harness.store.atomic import atomic_write_bytes, atomic_write_text

REPORT_NAME = "report.md"
ACCURACY_PLOT = "accuracy.png"
LATENCY_PLOT = "latency.png"
TRADEOFF_PLOT = "tradeoff.png"


def environment_lines(env: Environment) -> list[str]:
    """One line per fact a reader needs to trust or reproduce the numbers."""
    cpu, cgroup, versions = env.cpu, env.cgroup, env.versions
    quota, limit = cgroup.cpu_quota_cores, cgroup.memory_bytes
    lines = [
        f"- CPU: {cpu.model or '?'}, {cpu.logical_cores or '?'} logical cores, "
        f"{cpu.usable_cpus or '?'} usable (cgroup CPU quota: "
        f"{quota if quota is not None else 'none'}; memory limit: "
        f"{md.mib(limit) + ' MiB' if limit else 'none'})",
        f"- Versions: torch {versions.torch}, onnxruntime {versions.onnxruntime}, "
        f"onnx {versions.onnx}, numpy {versions.numpy}, python {env.python.version}",
    ]
    gpu = env.gpu
    if gpu and gpu.name:
        lines.append(
            f"- GPU: {gpu.name} (compute capability {gpu.compute_capability}, "
            f"driver {gpu.driver_version}, CUDA {gpu.cuda_version}, cuDNN {gpu.cudnn_version})"
        )
    if env.container.image:
        lines.append(f"- Container image: {env.container.image}:{env.container.tag}")
    lines.append(f"- Git commit: {env.git_commit or 'unknown'}")
    return lines


def _dataset_note(run: TrainingRun) -> str:
    data = run.dataset
    label = f"{data.name} ({data.train_images:,} train / {data.test_images:,} test)"
    if data.synthetic:
        return label + " - SYNTHETIC data: accuracies are smoke-test numbers, not real ones"
    return label


def _batch(run: TrainingRun) -> str:
    """The batch; data-parallel: per rank x ranks = global."""
    dist = run.distributed
    if dist is None:
        return str(run.batch_size)
    return f"{dist.batch_size} x {dist.world_size} ranks = {dist.global_batch_size}"


def _block_label(run: TrainingRun) -> str:
    model = run.model
    return f"{model.block} ({model.name}, {model.stem} stem)"


def accel_notes(runs: list[TrainingRun]) -> list[str]:
    """What precision ran and why, and cuDNN where it was off: once per distinct setting."""
    notes: list[str] = []
    for run in runs:
        accel = run.accel
        line = f"- Precision on {accel.device_name}: {accel.precision}"
        if accel.precision_reason:
            line += f" ({accel.precision_reason})"
        if not accel.cudnn_enabled:
            line += "; cuDNN off: cuDNN 9 has no kernels for this GPU (sm < 5.0)"
        if run.options.threads_reason:
            line += f"; CPU threads: {run.options.threads_reason}"
        if line not in notes:
            notes.append(line)
        notes += slow_epoch_notes(run)
    return notes


def slow_epoch_notes(run: TrainingRun) -> list[str]:
    """One line per flagged epoch: how much slower than the steady median, and the host's load."""
    steady = run.summary.steady_epoch_s
    notes = []
    for record in (e for e in run.epochs if e.epoch in run.summary.slow_epochs):
        others = f"{record.other_cores:.2f}" if record.other_cores is not None else "?"
        ratio = record.train_s / steady.median if steady else float("nan")
        notes.append(
            f"- SLOW epoch {record.epoch} of {_block_label(run)}: {record.train_s:.1f} s, "
            f"{ratio:.1f}x the steady median (other processes used {others} cores during it); "
            "it is inside the steady s/epoch figure, which is not trustworthy"
        )
    return notes


def training_tables(runs: list[TrainingRun]) -> str:
    """The seed's Table 2 (accuracy per block) and Table 3 (s/epoch), with spread and more."""
    accuracy_rows, time_rows = [], []
    for run in runs:
        summary, accel = run.summary, run.accel
        label = _block_label(run)
        target = summary.target_top1
        reached = summary.time_to_target_s
        accuracy_rows.append(
            [
                label,
                md.pct(summary.final_test_top1),
                f"{md.pct(summary.best_test_top1)} (epoch {summary.best_epoch})",
                f"{summary.epochs_completed}/{summary.epochs_planned}",
                f"{md.num(reached)} s (epoch {summary.epochs_to_target})"
                if reached is not None
                else f"not reached ({md.pct(target, 0)})",
            ]
        )
        epochs = run.epochs
        peak = max((e.peak_memory_bytes or 0 for e in epochs), default=0) or None
        energy = [e.energy_j for e in epochs if not e.warmup and e.energy_j is not None]
        time_rows.append(
            [
                label,
                accel.device_name,
                f"{accel.precision}{', channels-last' if accel.channels_last else ''}"
                f"{', compiled' if accel.compile else ''}",
                _batch(run),
                md.num(summary.first_epoch_s),
                md.stats(summary.steady_epoch_s, unit=" s"),
                md.num(summary.steady_images_per_s),
                md.pct(summary.steady_mfu, 1),
                md.mib(peak),
                md.num(sum(energy) / len(energy)) if energy else md.MISSING,
            ]
        )
    accuracy = md.table(
        ["block", "final top-1", "best top-1", "epochs", f"time to {md.pct(target, 0)}"],
        accuracy_rows,
    )
    seconds = md.table(
        [
            "block",
            "device",
            "precision",
            "batch",
            "first epoch s",
            "steady s/epoch",
            "images/s",
            "MFU",
            "peak MiB",
            "J/epoch",
        ],
        time_rows,
    )
    return (
        "Table 2: test accuracy per block\n\n" + accuracy + "\n\n"
        "Table 3: training seconds per epoch (device-synchronised; evaluation excluded; "
        "epoch 1 holds warm-up/compile and is reported apart from the steady state)\n\n"
        + seconds
        + "\n\n"
        + "\n".join(accel_notes(runs))
    )


def is_synthetic(result: RunResult) -> bool:
    """Whether any figure of this run comes from synthetic data (labelled everywhere)."""
    data = result.config.settings.get("data", {})
    return data.get("dataset") == "synthetic" or any(
        run.dataset.synthetic for run in result.training_runs()
    )


def synthetic_label(result: RunResult) -> str:
    return " (SYNTHETIC data)" if is_synthetic(result) else ""


def model_and_stem(result: RunResult) -> str:
    """'resnest50d, cifar stem': the stem asked for, else the one the trained models had (a
    suite that leaves it to each config records None, which read 'None stem')."""
    model = result.config.settings.get("model", {})
    runs = result.training_runs()
    names = ", ".join(model.get("names", [])) or (runs[0].model.name if runs else "?")
    stems = ", ".join(sorted({run.model.stem for run in runs}))
    stem = model.get("stem") or stems or "each config's own"
    return f"{names}, {stem} stem"


def _threads(result: RunResult) -> str | None:
    """Threads per runtime, for runs that timed runtimes (a train-only run has none)."""
    deployment = result.deployment
    threads = deployment.environment.threads if deployment else None
    return None if threads is None else str(threads)


def context_line(result: RunResult) -> str:
    """Model, stem, data set, threads: what every figure below depends on."""
    data = result.config.settings.get("data", {})
    threads = _threads(result)
    return (
        f"Model {model_and_stem(result)}; data set {data.get('dataset', '?')}"
        f"{' (SYNTHETIC)' if is_synthetic(result) else ''}"
        f"{f'; threads per runtime {threads}' if threads else ''}; run `{result.run_id}`."
    )


def summary_lines(result: RunResult) -> list[str]:
    """The first screen: trust verdict, what to ship, the summary table, abbreviations."""
    deployment = result.deployment
    label = synthetic_label(result)
    lines = [context_line(result), ""]
    if deployment and deployment.targets:
        lines += [
            trust_line(deployment),
            "",
            headline(deployment),
            "",
            reference_line(deployment),
            "",
            f"## Summary: what should I ship{label}",
            "",
            summary_table(deployment),
            "",
            "Verdict: the fastest target whose test top-1 is within the int8 limit of PyTorch "
            "eager fp32 and whose own figures agree. Speed-up = PyTorch eager batch-1 median / "
            "the target's, per interleaved round; median and range over rounds.",
            "",
            ABBREVIATIONS,
        ]
    elif deployment:  # built, not timed (the export step): the gate's outcome still comes first
        lines += [outcome_text(deployment)]
    for step, reason in result.failed_steps.items():
        lines += ["", f"- {step}: FAILED: {reason} (the other steps' results are kept)"]
    return lines


def render(result: RunResult, plots: list[str]) -> str:
    """report.md's text; every string from the result is escaped (it may be foreign)."""
    result = md.escaped(result)
    config = result.config
    label = synthetic_label(result)
    parts = [
        f"# resnest-bench {result.kind}: {config.suite}{label}",
        "",
        *summary_lines(result),
        "",
        "## Run",
        "",
        f"- Run: `{result.run_id}`, created {result.created}, seed {result.seed}",
        f"- Command: `{' '.join(result.command)}`",
        f"- Suite: {config.suite}{' (--quick)' if config.quick else ''}",
        *environment_lines(result.environment),
    ]
    training = result.training
    if training and training.runs:
        parts += ["", f"## Training{label}", "", f"Data: {_dataset_note(training.runs[0])}", ""]
        parts.append(training_tables(training.runs))
    transfer = training.transfer if training else None
    if transfer:
        init = transfer.init
        parts += [
            "",
            f"## Transfer learning{label}",
            "",
            f"Data: {_dataset_note(transfer)}; initialised from "
            f"`{Path(init.path).name if init else '?'}` ({init.source if init else '?'} weights, "
            "head replaced)",
            "",
            training_tables([transfer]),
        ]
    if result.deployment:
        parts += ["", deployment_section(result.deployment, synthetic=is_synthetic(result))]
    if plots:
        parts += ["", f"## Plots{label}", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(parts) + "\n"


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
            label=f"{_block_label(run)} on {run.dataset.name}",
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


# The accuracy axis spans at least this many points, so that one image's difference on a small
# test set does not fill the plot.
MIN_TOP1_SPAN_PTS = 2.0


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
    threads = _threads(result)
    return (
        f"{what}{synthetic_label(result)}\n{model_and_stem(result)}, {data.get('dataset', '?')}"
        f"{f', {threads} threads' if threads else ''}"
    )


def write_report(run_dir: Path, result: RunResult) -> list[str]:
    """Write plots and report.md into run_dir (each atomically); return the file names."""
    plots = []
    runs = result.training_runs()
    if runs:
        plot_accuracy(runs, run_dir / ACCURACY_PLOT, plot_title(result, "Test top-1 per epoch"))
        plots.append(ACCURACY_PLOT)
    if result.deployment and latency_series(result.deployment):
        title = plot_title(result, "Batch-1 latency per target")
        plot_latency(result.deployment, run_dir / LATENCY_PLOT, title)
        title = plot_title(result, "Speed-up vs accuracy per target")
        plot_tradeoff(result.deployment, run_dir / TRADEOFF_PLOT, title)
        plots += [LATENCY_PLOT, TRADEOFF_PLOT]
    atomic_write_text(run_dir / REPORT_NAME, render(result, plots))
    return [REPORT_NAME, *plots]
