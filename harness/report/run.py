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

from pathlib import Path

from resnest_bench.harness.report import markdown as md
from resnest_bench.harness.report.deployment import (
    ABBREVIATIONS,
    deployment_section,
    latency_series,
)
from resnest_bench.harness.report.labels import (
    block_label,
    is_synthetic,
    model_and_stem,
    synthetic_label,
    threads_text,
)
from resnest_bench.harness.report.plots import (
    ACCURACY_PLOT,
    LATENCY_PLOT,
    TRADEOFF_PLOT,
    plot_accuracy,
    plot_latency,
    plot_title,
    plot_tradeoff,
)
from resnest_bench.harness.report.verdict import (
    headline,
    outcome_text,
    reference_line,
    summary_table,
    trust_line,
)
from resnest_bench.harness.results import RunResult
from resnest_bench.harness.results.environment import Environment
from resnest_bench.harness.results.training import TrainingRun
from resnest_bench.harness.store.atomic import atomic_write_text

REPORT_NAME = "report.md"


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
            f"- SLOW epoch {record.epoch} of {block_label(run)}: {record.train_s:.1f} s, "
            f"{ratio:.1f}x the steady median (other processes used {others} cores during it); "
            "it is inside the steady s/epoch figure, which is not trustworthy"
        )
    return notes


def training_tables(runs: list[TrainingRun]) -> str:
    """The seed's Table 2 (accuracy per block) and Table 3 (s/epoch), with spread and more."""
    accuracy_rows, time_rows = [], []
    for run in runs:
        summary, accel = run.summary, run.accel
        label = block_label(run)
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


def context_line(result: RunResult) -> str:
    """Model, stem, data set, threads: what every figure below depends on."""
    data = result.config.settings.get("data", {})
    threads = threads_text(result)
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
