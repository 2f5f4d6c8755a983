"""Run a suite end to end: data -> train -> transfer -> deploy -> result.json + report.md.

Every step command of the CLI is a one-step suite, so there is one path through the harness.
Layout under the reports folder:

    <reports>/<run_id>/        result.json, report.md, plots, per-epoch logs, artifacts/
                               (staged: it appears whole when the run succeeds, or not at all)
    <reports>/work/<run_id>/   training checkpoints, written every epoch; `--resume RUN_ID`
                               continues from them after a crash or a kill
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from resnest_bench import models
from resnest_bench.harness import console
from resnest_bench.harness.accel import select_device
from resnest_bench.harness.atomic import staged_dir
from resnest_bench.harness.checkpoints import model_from_file
from resnest_bench.harness.config import TrainSection, TransferSection
from resnest_bench.harness.data import Dataset, load_dataset
from resnest_bench.harness.deploy import DeployConfig, run_deploy
from resnest_bench.harness.envinfo import fingerprint
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.quantize import QuantSettings
from resnest_bench.harness.report import write_report
from resnest_bench.harness.results.training import EpochRecord
from resnest_bench.harness.schema import SCHEMA_VERSION, write_result
from resnest_bench.harness.suite import Suite
from resnest_bench.harness.timing import TimingPolicy
from resnest_bench.harness.train import (
    CHECKPOINT_NAME,
    EPOCH_LOG_NAME,
    Callbacks,
    create_seeded_model,
    load_transfer_weights,
    train,
)

RESULT_NAME = "result.json"


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for on top of the suite file."""

    suite: Suite
    reports_root: Path
    data_root: Path
    dataset: str | None = None  # overrides data.dataset (e.g. synthetic for smoke runs)
    folder: Path | None = None
    checkpoint: Path | None = None  # deploy/transfer from this instead of training
    resume: str | None = None  # a run id whose work dir holds checkpoints to continue
    device: str | None = None
    download: bool = True
    argv: list[str] = field(default_factory=lambda: list(sys.argv))


def new_run_id(label: str, reports_root: Path) -> str:
    """Sortable, unique, readable: 20261123-051900-cpu-runtime (-2, -3 ... if taken)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_id, n = f"{stamp}-{label}", 1
    while (reports_root / run_id).exists() or (reports_root / "work" / run_id).exists():
        n += 1
        run_id = f"{stamp}-{label}-{n}"
    return run_id


def _device(request: RunRequest) -> str:
    wanted = request.device or request.suite.settings["device"]
    return str(select_device(wanted))  # "cuda" with no GPU -> GpuRequiredError, before any work


def _load_data(request: RunRequest, name: str | None = None) -> Dataset:
    data = request.suite.section("data")
    dataset = name or request.dataset or data.get("dataset", "cifar10")
    folder = request.folder or (Path(data["folder"]) if data.get("folder") else None)
    if request.dataset == "synthetic" and name not in (None, "synthetic"):
        dataset = "synthetic"  # a synthetic smoke run stays synthetic in every step
    with console.progress() as bar:
        task = bar.add_task(f"data: {dataset}", total=None)
        loaded = load_dataset(
            dataset,
            root=request.data_root,
            download=request.download,
            folder=folder,
            train_subset=data.get("train_subset"),
            test_subset=data.get("test_subset"),
            seed=request.suite.settings["seed"],
            num_classes=100 if name == "cifar100" and dataset == "synthetic" else None,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        bar.remove_task(task)
    return loaded


def _section(section: dict[str, Any], kind: type[TrainSection]) -> TrainSection:
    return kind(**{k: v for k, v in section.items() if k in kind.model_fields})


def _callbacks(bar: Any, label: str, epochs: int) -> Callbacks:
    epoch_task = bar.add_task(f"{label}: epochs", total=epochs)
    batch_task = bar.add_task(f"{label}: batches", total=None)

    def on_batch(i: int, n: int) -> None:
        bar.update(batch_task, completed=i, total=n)

    def on_epoch_end(record: EpochRecord) -> None:
        bar.update(epoch_task, completed=record.epoch)
        loss = record.train_loss
        console.log(
            f"{label} epoch {record.epoch}: {record.train_s:.1f} s, "
            f"loss {'nan' if loss is None else f'{loss:.4f}'}, "
            f"test top-1 {100 * record.test_top1:.2f}%"
        )

    return Callbacks(on_epoch_end=on_epoch_end, on_batch=on_batch)


def _train_one(
    request: RunRequest,
    model: models.ResNeSt,
    dataset: Dataset,
    work_dir: Path,
    section: TrainSection,
    device: str,
    init: Any = None,
) -> dict[str, Any]:
    with console.progress() as bar:
        result = train(
            model,
            dataset,
            work_dir,
            section,
            device=device,
            seed=request.suite.settings["seed"],
            resume=request.resume is not None,
            callbacks=_callbacks(bar, work_dir.name, section.epochs),
            init=init,
            suite=request.suite.name,
        )
    return result.model_dump(mode="json")


def _model_overrides(request: RunRequest, num_classes: int) -> dict[str, Any]:
    section = request.suite.section("model")
    return {
        "num_classes": num_classes,
        "stem": section.get("stem"),
        "radix": section.get("radix"),
        "cardinality": section.get("cardinality"),
    }


def _build_model(request: RunRequest, name: str, num_classes: int) -> models.ResNeSt:
    seed = request.suite.settings["seed"]
    return create_seeded_model(name, seed=seed, **_model_overrides(request, num_classes))


def _deploy_config(request: RunRequest, device: str) -> DeployConfig:
    section = request.suite.section("deploy")
    timing = section.get("timing", {})
    quant = QuantSettings(calibration_images=section.get("calibration_images", 512))
    return DeployConfig(
        runtimes=tuple(section["runtimes"]) if "runtimes" in section else None,
        threads=section.get("threads"),
        policy=TimingPolicy(**timing),
        throughput_batches=tuple(section.get("throughput_batches", (8, 16, 32))),
        timed_images=section.get("timed_images"),
        small_set=request.suite.section("data").get("small_subset", 50),
        int8=quant,
        max_int8_drop_pts=section.get("int8_max_drop", 1.0),
        int8_strict=section.get("int8_strict", False),
        parity_atol=section.get("parity_atol", 1e-3),
    )


def _envelope(request: RunRequest, run_id: str, device: str) -> dict[str, Any]:
    suite = request.suite
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "suite" if len(suite.steps) > 1 else suite.steps[0].replace("export", "deploy"),
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": ["resnest-bench", *request.argv[1:]],
        "seed": suite.settings["seed"],
        "environment": fingerprint(device=device).model_dump(mode="json"),
        "config": {
            "suite": suite.name,
            "suite_file": str(suite.path),
            "quick": suite.quick,
            "settings": suite.settings,
            "dataset_override": request.dataset,
            "checkpoint": str(request.checkpoint) if request.checkpoint else None,
            "device": device,
        },
    }


def _load_checkpoint_model(request: RunRequest, num_classes: int) -> models.ResNeSt:
    """A model from --checkpoint: its own config when it carries one (ours), else the suite's
    model settings (official/timm ImageNet weights, plain state dicts)."""
    name = request.suite.section("model").get("names", ["resnest50d"])[0]
    return model_from_file(
        request.checkpoint,
        fallback=lambda: _build_model(request, name, num_classes),
        num_classes=num_classes,
    )


def run_suite(request: RunRequest) -> Path:
    """Run every step of the suite; return the published report directory."""
    suite, reports = request.suite, request.reports_root
    device = _device(request)
    run_id = request.resume or new_run_id(suite.name, reports)
    work = reports / "work" / run_id
    if request.checkpoint is not None and not request.checkpoint.is_file():
        raise BenchError(f"weights file not found: {request.checkpoint}")
    if request.resume and not work.is_dir():
        raise BenchError(f"nothing to resume: {work} does not exist")
    final = reports / run_id
    if final.exists():
        raise BenchError(f"{final} already holds a finished run; start a new one")
    result = _envelope(request, run_id, device)
    needs_data = {"train", "deploy", "export"} & set(suite.steps)
    dataset = _load_data(request) if needs_data else None  # transfer loads its own data set
    trained: dict[str, tuple[models.ResNeSt, dict[str, Any]]] = {}
    with staged_dir(final) as stage:
        if "train" in suite.steps and request.checkpoint is None:
            for name in suite.section("model")["names"]:
                model = _build_model(request, name, dataset.num_classes)
                work_dir = work / f"train-{name}"
                run = _train_one(
                    request,
                    model,
                    dataset,
                    work_dir,
                    _section(suite.section("train"), TrainSection),
                    device,
                )
                shutil.copyfile(work_dir / EPOCH_LOG_NAME, stage / f"epochs-{name}.jsonl")
                trained[name] = (model, run)
        training: dict[str, Any] = {"runs": [run for _, run in trained.values()], "transfer": None}
        best = max(
            trained, key=lambda n: trained[n][1]["summary"]["best_test_top1"] or 0.0, default=None
        )
        if "transfer" in suite.steps:
            training["transfer"] = _transfer(request, best, work, stage, device)
        if "deploy" in suite.steps or "export" in suite.steps:
            model = (
                trained[best][0] if best else _load_checkpoint_model(request, dataset.num_classes)
            )
            config = _deploy_config(request, device)
            measure = "deploy" in suite.steps
            console.log(f"deploy: exporting, quantizing{', timing every runtime' * measure}")
            deployed = run_deploy(
                model.cpu().eval(), dataset, stage / "artifacts", config, measure=measure
            )
            result["deployment"] = deployed.to_dict()
        if training["runs"] or training["transfer"]:
            result["training"] = training
        write_result(stage / RESULT_NAME, result)
        write_report(stage, result)
    return final


def _transfer(
    request: RunRequest, best: str | None, work: Path, stage: Path, device: str
) -> dict[str, Any]:
    """Fine-tune the best CIFAR-10 block (or --checkpoint) on the transfer data set."""
    section = request.suite.section("transfer")
    dataset = _load_data(request, section.get("dataset", "cifar100"))
    names = request.suite.section("model")["names"]
    name = best or names[0]
    source = work / f"train-{name}" / CHECKPOINT_NAME if best else request.checkpoint
    if source is None:
        raise BenchError("transfer needs a trained model: run the train step or give --checkpoint")
    model = _build_model(request, name, dataset.num_classes)
    init = load_transfer_weights(
        model, source, num_classes=dataset.num_classes, seed=request.suite.settings["seed"]
    )
    work_dir = work / f"transfer-{name}"
    run = _train_one(
        request, model, dataset, work_dir, _section(section, TransferSection), device, init=init
    )
    shutil.copyfile(work_dir / EPOCH_LOG_NAME, stage / f"epochs-transfer-{name}.jsonl")
    return run


def reports_root(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("RESNEST_BENCH_REPORTS", "reports"))


def data_root(explicit: str | None) -> Path:
    default = Path.home() / ".cache" / "resnest-bench" / "data"
    return Path(explicit or os.environ.get("RESNEST_BENCH_DATA", default))
