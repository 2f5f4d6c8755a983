"""The stages a run is made of, each a public function that the pipeline and the sweep both call:
load the data, build a model, train or fine-tune it, deploy it, and say what was asked for.

Each stage takes the RunRequest (a validated suite and where to read and write) and returns a
typed result; the pipeline (harness.pipeline) orders them, claims the run and publishes it.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from resnest_bench import models
from resnest_bench.harness import console
from resnest_bench.harness.checkpoints import PRETRAINED, read_model_file
from resnest_bench.harness.config import Suite
from resnest_bench.harness.data import Dataset, load_dataset
from resnest_bench.harness.data.types import Preprocessing
from resnest_bench.harness.deploy import run_deploy
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.export import EVAL_SEED
from resnest_bench.harness.results import RunConfig
from resnest_bench.harness.results.deployment import DataUse, Deployment
from resnest_bench.harness.results.training import EpochRecord, TrainingRun
from resnest_bench.harness.train import Callbacks, create_seeded_model, load_transfer_weights, train
from resnest_bench.harness.train.distributed import local_first, ranks_from_env


@dataclass(frozen=True)
class RunRequest:
    """A validated suite (flags already merged in) and where to read and write."""

    suite: Suite
    suite_path: Path | None  # None for the step commands (their suite has no file)
    quick: bool
    reports_root: Path
    data_root: Path
    checkpoint: Path | None = None  # deploy/transfer from this instead of training
    resume: str | None = None  # a run id whose work dir holds checkpoints to continue
    keep_checkpoints: bool = False  # else work/<run_id> goes once the run is published
    download: bool = True
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    ray_address: str | None = None  # a sweep's points as tasks on this Ray cluster ("auto")


def load_data(request: RunRequest, name: str, image_size: int = 32) -> Dataset:
    """The named data set with the suite's subsets; a synthetic suite stays synthetic in every
    step (transfer to cifar100 then gets 100 synthetic classes)."""
    data = request.suite.data
    dataset = "synthetic" if data.dataset == "synthetic" else name
    with local_first(ranks_from_env()), console.progress() as bar:
        task = bar.add_task(f"data: {dataset}", total=None)
        loaded = load_dataset(
            dataset,
            root=request.data_root,
            download=request.download,
            folder=data.folder,
            train_subset=data.train_subset,
            test_subset=data.test_subset,
            image_size=image_size,
            seed=request.suite.seed,
            val_fraction=data.val_fraction,
            num_classes=100 if name == "cifar100" and dataset == "synthetic" else None,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        bar.remove_task(task)
    return loaded


def training_callbacks(bar: Any, label: str, epochs: int) -> Callbacks:
    epoch_task = bar.add_task(f"{label}: epochs", total=epochs)
    batch_task = bar.add_task(f"{label}: batches", total=None)

    def on_batch(i: int, n: int) -> None:
        bar.update(batch_task, completed=i, total=n)

    def on_epoch_end(record: EpochRecord) -> None:
        bar.update(epoch_task, completed=record.epoch)
        bar.reset(batch_task)  # the next epoch's batches from zero, with their own ETA
        loss = record.train_loss
        console.log(
            f"{label} epoch {record.epoch}: {record.train_s:.1f} s, "
            f"loss {'nan' if loss is None else f'{loss:.4f}'}, "
            f"test top-1 {100 * record.test_top1:.2f}%"
        )

    return Callbacks(on_epoch_end=on_epoch_end, on_batch=on_batch)


def build_model(suite: Suite, name: str, num_classes: int) -> models.ResNeSt:
    section = suite.model
    return create_seeded_model(
        name,
        seed=suite.seed,
        num_classes=num_classes,
        stem=section.stem,
        radix=section.radix,
        cardinality=section.cardinality,
    )


def train_one(
    request: RunRequest,
    model: models.ResNeSt,
    dataset: Dataset,
    work_dir: Path,
    *,
    device: str,
    stage_log: Path | None = None,
    transfer: bool = False,
    init: Any = None,
    label: str | None = None,
) -> TrainingRun:
    """Train (or fine-tune) one model in `work_dir` (checkpoints; continued when the request
    resumes); its per-epoch log is copied to `stage_log` (the run directory) when given.
    `label` names it in progress lines (default: the work folder's name)."""
    suite = request.suite
    section = suite.transfer if transfer else suite.train
    with console.progress() as bar:
        run = train(
            model,
            dataset,
            work_dir,
            section,
            device=device,
            seed=suite.seed,
            resume=request.resume is not None,
            callbacks=training_callbacks(bar, label or work_dir.name, section.epochs),
            init=init,
            suite=suite.name,
            ranks=ranks_from_env(),
        )
    if stage_log is not None:
        shutil.copyfile(work_dir / run.files.epoch_log, stage_log)
    return run


def _load_checkpoint_model(
    request: RunRequest, dataset: Dataset
) -> tuple[models.ResNeSt, Dataset, str]:
    """A model from --checkpoint: its own config when it carries one (ours), else the suite's
    first model (official/timm ImageNet weights, plain state dicts); the data set fed with the
    preprocessing the file carries (never recomputed from the folder given now), and where
    that preprocessing came from."""
    model, pre = read_model_file(
        request.checkpoint,
        fallback=lambda: build_model(
            request.suite, request.suite.model.names[0], dataset.num_classes
        ),
        num_classes=dataset.num_classes,
    )
    if pre is None:
        return model, dataset, f"the training images of {dataset.source} (the file carries none)"
    origin = f"checkpoint {request.checkpoint}"
    if pre.source == PRETRAINED:
        source = (
            f"ImageNet's mean/std and {model.config.name}'s {pre.image_size} px model-card "
            f"input (the {origin} holds official/timm pretrained weights, which carry none)"
        )
        return model, _as_pretrained(request, dataset, pre, origin), source
    return model, dataset.preprocessed_as(pre, origin), f"the {origin}"


def _as_pretrained(
    request: RunRequest, dataset: Dataset, pre: Preprocessing, origin: str
) -> Dataset:
    """The data fed as official/timm weights expect: ImageNet's mean/std, and the images read
    again at the model's input size (a folder or synthetic data resizes; CIFAR cannot)."""
    size = pre.image_size
    if dataset.image_size != size:
        try:
            dataset = load_data(request, request.suite.data.dataset, image_size=size)
        except BenchError as exc:
            raise BenchError(
                f"{origin} holds pretrained weights for {size}x{size} images but "
                f"{dataset.source} gives {dataset.image_size}x{dataset.image_size} ({exc}); "
                "use --dataset folder, which resizes, or fine-tune with the transfer step"
            ) from None
    return replace(dataset, mean=pre.mean, std=pre.std)


def _data_use(
    dataset: Dataset, deployment: Deployment, preprocessing_from: str, small_subset: int
) -> DataUse:
    """Which images each figure came from and how the subsets were picked: class-balanced
    (classes taking turns, harness.data.split), never a sorted folder's first files. The
    counts that ran (parity, gate) are in the build's records; the report states them."""
    int8 = deployment.artifacts.int8
    balanced = f"class-balanced (classes taking turns, seed {EVAL_SEED})"
    # the images calibration really used: none when no int8 model was built
    calibration = (
        f"{int8.calibration_images} of {dataset.train_split}, {balanced}" if int8 else "none"
    )
    small = min(small_subset, len(dataset.test))
    return DataUse(
        dataset=dataset.source,
        calibration=calibration,
        evaluation=f"{dataset.test_split}; subsets (parity, gate, small {small}) {balanced}",
        mean=list(dataset.mean),
        std=list(dataset.std),
        image_size=dataset.image_size,
        preprocessing_from=preprocessing_from,
    )


def fine_tune(
    request: RunRequest, best: tuple[str, TrainingRun] | None, work: Path, stage: Path, device: str
) -> TrainingRun:
    """Fine-tune the best CIFAR-10 block (or --checkpoint) on the transfer data set."""
    suite = request.suite
    dataset = load_data(request, suite.transfer.dataset)
    name = best[0] if best else suite.model.names[0]
    if best:
        source = work / f"train-{name}" / best[1].files.checkpoint
    elif request.checkpoint is not None:
        source = request.checkpoint
    else:
        raise BenchError("transfer needs a trained model: run the train step or give --checkpoint")
    model = build_model(suite, name, dataset.num_classes)
    init = load_transfer_weights(model, source, num_classes=dataset.num_classes, seed=suite.seed)
    return train_one(
        request,
        model,
        dataset,
        work / f"transfer-{name}",
        stage_log=stage / f"epochs-transfer-{name}.jsonl",
        transfer=True,
        device=device,
        init=init,
    )


def model_to_deploy(
    request: RunRequest, trained: models.ResNeSt | None, dataset: Dataset
) -> tuple[models.ResNeSt, Dataset, str]:
    """The model the deploy step takes: the one just trained, else --checkpoint's; the data
    set fed as that model expects, and where its preprocessing came from."""
    if trained is not None:
        return trained, dataset, f"the training images of {dataset.source}"
    return _load_checkpoint_model(request, dataset)


def deploy_model(
    request: RunRequest,
    model: models.ResNeSt,
    dataset: Dataset,
    out: Path,
    *,
    device: str,
    preprocessing_from: str,
) -> Deployment:
    """Export, quantize and (deploy step) time every target, one named step at a time; the
    deployment records which images each figure came from."""
    suite = request.suite
    measure = "deploy" in suite.steps
    console.log(f"deploy: exporting, quantizing{', timing every target' * measure}")
    with console.steps("deploy") as step:
        deployment = run_deploy(
            model.cpu().eval(),
            dataset,
            out,
            suite.deploy,
            small_subset=suite.data.small_subset,
            measure=measure,
            step=step,
            device=device,
        )
    for target in deployment.targets:  # -v: the figures as they came, before the report
        ratio = target.speedup
        console.detail(
            f"{target.target}: {target.status}"
            + (f", {ratio.median:.2f}x eager ({ratio.low:.2f}-{ratio.high:.2f})" if ratio else "")
            + (f", FLAGGED: {target.flag}" if target.flag else "")
        )
    if deployment.host and deployment.host.reasons:
        console.log("deploy: figures not trustworthy: " + "; ".join(deployment.host.reasons))
    use = _data_use(dataset, deployment, preprocessing_from, suite.data.small_subset)
    return deployment.model_copy(update={"data": use})


def run_config(request: RunRequest, device: str) -> RunConfig:
    """What was asked for, as every result records it."""
    return RunConfig(
        suite=request.suite.name,
        suite_file=str(request.suite_path) if request.suite_path else None,
        quick=request.quick,
        settings=request.suite.model_dump(mode="json"),
        checkpoint=str(request.checkpoint) if request.checkpoint else None,
        device=device,
    )
