"""report.md and plots, rendered from a RunResult (never from live objects).

Rendering only reads the result, so `resnest-bench report result.json` can rebuild a report
years later, and compare uses the same building blocks. Sections follow the seed study:
Table 2 (accuracy per block), Table 3 (seconds per epoch), Table 4 (per-class scores of one
image), Table 5 (runtime comparison), plus what the seed did not measure.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from resnest_bench.harness import markdown as md
from resnest_bench.harness.atomic import atomic_write_bytes, atomic_write_text
from resnest_bench.harness.deploy_report import deployment_section, latency_series
from resnest_bench.harness.results import RunResult
from resnest_bench.harness.results.deployment import Deployment
from resnest_bench.harness.results.environment import Environment
from resnest_bench.harness.results.training import TrainingRun

REPORT_NAME = "report.md"
ACCURACY_PLOT = "accuracy.png"
LATENCY_PLOT = "latency.png"


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
        if line not in notes:
            notes.append(line)
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
                str(run.batch_size),
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


def render(result: RunResult, plots: list[str]) -> str:
    config = result.config
    parts = [
        f"# resnest-bench {result.kind}: {config.suite}",
        "",
        f"- Run: `{result.run_id}`, created {result.created}, seed {result.seed}",
        f"- Command: `{' '.join(result.command)}`",
        f"- Suite: {config.suite}{' (--quick)' if config.quick else ''}",
        *environment_lines(result.environment),
    ]
    training = result.training
    if training and training.runs:
        parts += ["", "## Training", "", f"Data: {_dataset_note(training.runs[0])}", ""]
        parts.append(training_tables(training.runs))
    transfer = training.transfer if training else None
    if transfer:
        init = transfer.init
        parts += [
            "",
            "## Transfer learning",
            "",
            f"Data: {_dataset_note(transfer)}; initialised from "
            f"`{Path(init.path).name if init else '?'}` ({init.source if init else '?'} weights, "
            "head replaced)",
            "",
            training_tables([transfer]),
        ]
    if result.deployment:
        parts += ["", deployment_section(result.deployment)]
    if plots:
        parts += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(parts) + "\n"


def _save_figure(figure: Any, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def plot_accuracy(runs: list[TrainingRun], path: Path) -> None:
    """Test top-1 per epoch for each training run (the seed's Figures 7 and 8)."""
    from matplotlib.figure import Figure

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
    axes.set_xlabel("epoch")
    axes.set_ylabel("test top-1 (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    _save_figure(figure, path)


def plot_latency(deployment: Deployment, path: Path) -> None:
    """Batch-1 latency per runtime: a median bar with a whisker up to p99."""
    from matplotlib.figure import Figure

    labels, medians, lows, highs = latency_series(deployment)
    figure = Figure(figsize=(6, 0.5 + 0.45 * len(labels)))
    axes = figure.subplots()
    axes.barh(labels, medians, xerr=[lows, highs], capsize=3, color="#4c72b0")
    axes.invert_yaxis()
    axes.set_xlabel("batch-1 latency, ms (bar: median; whisker: up to p99)")
    axes.grid(axis="x", alpha=0.3)
    _save_figure(figure, path)


def write_report(run_dir: Path, result: RunResult) -> list[str]:
    """Write plots and report.md into run_dir (each atomically); return the file names."""
    plots = []
    runs = result.training_runs()
    if runs:
        plot_accuracy(runs, run_dir / ACCURACY_PLOT)
        plots.append(ACCURACY_PLOT)
    if result.deployment and latency_series(result.deployment)[0]:
        plot_latency(result.deployment, run_dir / LATENCY_PLOT)
        plots.append(LATENCY_PLOT)
    atomic_write_text(run_dir / REPORT_NAME, render(result, plots))
    return [REPORT_NAME, *plots]
