"""Merge results from several machines into one comparison: GPU generation x block for
training, runtime x metric for deployment. The seed study's published figures can join as
reference rows, always labelled as such (they were measured elsewhere, not by this tool).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.report import markdown as md
from resnest_bench.harness.report.deployment import TARGET_HEAD, target_rows
from resnest_bench.harness.report.labels import is_synthetic, synthetic_label
from resnest_bench.harness.results import RunResult, read_result
from resnest_bench.harness.store.atomic import atomic_write_json, atomic_write_text, staged_dir

COMPARE_NAME = "compare.md"
SEED_SOURCE = "seed study (Fu & Ge), published, not measured here"


class SeedTraining(NamedTuple):
    """A row of the seed study's Tables 2 and 3: CIFAR-10 test top-1 and training s/epoch."""

    machine: str
    block: str
    epoch_s: float
    top1: float


class SeedDeploy(NamedTuple):
    """A row of the seed study's Table 5: full test set ms/image, 50-image top-1, size in MB."""

    runtime: str
    ms: float
    top1: float
    small: float
    size_mb: int


SEED_TRAINING = (
    SeedTraining("K80", "basic", 302.0, 0.8862),
    SeedTraining("P100", "basic", 36.0, 0.8923),
    SeedTraining("V100", "basic", 25.5, 0.8907),
    SeedTraining("K80", "bottleneck", 149.0, 0.8705),
    SeedTraining("P100", "bottleneck", 31.0, 0.8742),
    SeedTraining("V100", "bottleneck", 22.0, 0.8765),
)
SEED_DEPLOY = (
    SeedDeploy("PyTorch (seed)", 52.42, 0.8923, 0.90, 128),
    SeedDeploy("Caffe2 (seed)", 28.78, 0.8812, 0.88, 115),
)


def machine_label(result: RunResult) -> str:
    """GPU name when the run used one, else the CPU and its usable cores."""
    env = result.environment
    if env.gpu and env.gpu.name:
        return env.gpu.name
    return f"{env.cpu.model or 'CPU'} ({env.cpu.usable_cpus or '?'} CPUs)"


def torch_label(result: RunResult) -> str:
    """The torch build a row ran on: the GPU images differ (2.13.0+cu130, 2.7.1+cu118, ...),
    and a kernel or default that changed between releases changes the figures."""
    return result.environment.versions.torch or md.MISSING


def _resolve(path: Path) -> Path:
    return path / "result.json" if path.is_dir() else path


def _training_rows(results: list[RunResult]) -> list[list[str]]:
    rows = []
    for result in results:
        for run in result.training_runs():
            summary, model, data = run.summary, run.model, run.dataset
            rows.append(
                [
                    machine_label(result),
                    model.block,
                    f"{model.name}, {model.stem} stem",
                    f"{data.name}{' [SYNTHETIC]' if data.synthetic else ''}",
                    torch_label(result),
                    run.accel.precision,
                    md.stats(summary.steady_epoch_s, unit=" s"),
                    md.num(summary.steady_images_per_s),
                    md.pct(summary.steady_mfu, 1),
                    md.pct(summary.final_test_top1),
                    result.run_id,
                ]
            )
    return rows


def _seed_training_rows() -> list[list[str]]:
    return [
        [
            f"{row.machine} [reference]",
            row.block,
            "ResNeSt-50 (seed), stem not stated",
            "cifar10",
            "PyTorch, version not stated",
            "fp32",
            f"{row.epoch_s} s (n not published)",
            md.num(50_000 / row.epoch_s),
            md.MISSING,
            md.pct(row.top1),
            SEED_SOURCE,
        ]
        for row in SEED_TRAINING
    ]


def _deploy_rows(results: list[RunResult]) -> list[list[str]]:
    """Per target: the machine (SYNTHETIC marked: never beside real runs unmarked), its row,
    and the run it came from."""
    rows = []
    for result in results:
        if result.deployment:
            machine = machine_label(result) + (" [SYNTHETIC]" if is_synthetic(result) else "")
            torch = torch_label(result)
            rows += [
                [machine, torch, *row, result.run_id] for row in target_rows(result.deployment)
            ]
    return rows


def _seed_deploy_row(row: SeedDeploy) -> list[str]:
    """A seed Table 5 row in TARGET_HEAD order: only what the seed published is filled in."""
    cells = {
        "target": row.runtime,
        "avg ms/image (test set)": f"{row.ms:.2f} (n=10,000)",
        "top-1 full": md.pct(row.top1),
        "top-1 small": f"{md.pct(row.small)} (n=50)",
        "artifact MiB": f"{row.size_mb} MB",
    }
    cells = [cells.get(head, md.MISSING) for head in TARGET_HEAD]
    return ["seed machine [reference]", "not stated", *cells, SEED_SOURCE]


def render_comparison(results: list[RunResult], seed_reference: bool) -> str:
    """compare.md's text; every string from the results is escaped (they come from elsewhere)."""
    results = [md.escaped(result) for result in results]
    training = _training_rows(results) + (_seed_training_rows() if seed_reference else [])
    parts = [
        "# resnest-bench comparison",
        "",
        *[
            f"- `{r.run_id}`: {machine_label(r)}, {r.kind}{synthetic_label(r)}, "
            f"`{' '.join(r.command)}`"
            for r in results
        ],
    ]
    if training:
        head = [
            "machine",
            "block",
            "model",
            "data",
            "torch",
            "precision",
            "steady s/epoch",
            "images/s",
            "MFU",
            "final top-1",
            "run",
        ]
        parts += ["", "## Training: machine x block", "", md.table(head, training)]
    deploy = _deploy_rows(results)
    if deploy or seed_reference:
        if seed_reference:
            deploy += [_seed_deploy_row(row) for row in SEED_DEPLOY]
        parts += [
            "",
            "## Deployment: target x metric (CPU runtimes; GPU ones where present)",
            "",
            md.table(["machine", "torch", *TARGET_HEAD, "run"], deploy),
        ]
    if not training and not deploy:
        raise BenchError("none of the results holds training or deployment measurements")
    return "\n".join(parts) + "\n"


def write_comparison(
    paths: list[Path], reports_root: Path, *, seed_reference: bool = False
) -> Path:
    """Read every result (refusing foreign or newer files), write compare.md + compare.json."""
    results = [read_result(_resolve(path)) for path in paths]
    text = render_comparison(results, seed_reference)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    final = reports_root / f"{stamp}-compare"
    with staged_dir(final) as stage:
        atomic_write_text(stage / COMPARE_NAME, text)
        atomic_write_json(
            stage / "compare.json",
            {"runs": [str(_resolve(p)) for p in paths], "seed_reference": seed_reference},
        )
    return final
