"""How a run is named in a report's lines, plots and comparisons: its model, stem, data, threads."""

from __future__ import annotations

from resnest_bench.harness.results import RunResult
from resnest_bench.harness.results.training import TrainingRun


def block_label(run: TrainingRun) -> str:
    model = run.model
    return f"{model.block} ({model.name}, {model.stem} stem)"


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


def threads_text(result: RunResult) -> str | None:
    """Threads per runtime, for runs that timed runtimes (a train-only run has none)."""
    deployment = result.deployment
    threads = deployment.environment.threads if deployment else None
    return None if threads is None else str(threads)
