"""train(): one training run, from a fresh model or its last checkpoint to a TrainingRun.

Default recipes are the seed study's (Fu and Ge, Table 1; harness.config.TrainSection and
TransferSection). A resume must match the checkpoint's model, data, recipe and seed (speed
settings may change); out of GPU memory, auto_batch retries a fresh run at half the batch.
"""

from __future__ import annotations

import gc
import json
from functools import partial
from pathlib import Path
from typing import Any

import torch

from resnest_bench import models
from resnest_bench.harness.checkpoints import TrainCheckpoint, config_to_dict, read_checkpoint
from resnest_bench.harness.config import TrainSection
from resnest_bench.harness.data import Dataset
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.gpu.accel import Accel, select_device
from resnest_bench.harness.measure.threads import training_threads
from resnest_bench.harness.results.training import (
    DatasetInfo,
    ModelInfo,
    Recipe,
    RunOptions,
    TrainingFiles,
    TrainingRun,
    WeightsInit,
)
from resnest_bench.harness.train.distributed import DistributedTrainer, Ranks, broadcast, describe
from resnest_bench.harness.train.loop import (
    CHECKPOINT_NAME,
    EPOCH_LOG_NAME,
    Callbacks,
    Trainer,
    run_epochs,
)
from resnest_bench.harness.train.summary import summarize
from resnest_bench.models.profile import count_macs, count_params

# How a run goes, not what it learns: these may change between a checkpoint and its resume.
_NOT_LEARNT = frozenset(
    {
        "channels_last",
        "compile",
        "compile_mode",
        "auto_batch",
        "target_accuracy",
        "checkpoint_every",
        "dist_timeout_s",
    }
)


def _dataset_info(dataset: Dataset) -> DatasetInfo:
    return DatasetInfo(
        name=dataset.name,
        synthetic=dataset.synthetic,
        source=dataset.source,
        num_classes=dataset.num_classes,
        image_size=dataset.image_size,
        train_images=len(dataset.train),
        test_images=len(dataset.test),
        mean=list(dataset.mean),
        std=list(dataset.std),
        classes=list(dataset.classes),
        train_split=dataset.train_split,
        test_split=dataset.test_split,
        held_out_by=dataset.held_out_by,
    )


def _model_info(model: models.ResNeSt, image_size: int) -> ModelInfo:
    cfg = model.config
    macs = count_macs(model, image_size)
    return ModelInfo(
        name=cfg.name,
        block=cfg.block,
        stem=cfg.stem,
        radix=cfg.radix,
        cardinality=cfg.cardinality,
        num_classes=cfg.num_classes,
        params=count_params(model),
        macs=macs,
        # forward + backward ~ 3 forward passes; a multiply-accumulate is 2 FLOPs
        flops_per_train_image=3 * macs * 2,
    )


def _identity(
    dataset: DatasetInfo, section: TrainSection, seed: int, ranks: Ranks | None
) -> dict[str, Any]:
    """What besides the model config must match for a checkpoint to be resumed (the number
    of ranks too: it sets the global batch)."""
    world = {"world_size": ranks.world_size} if ranks and ranks.world_size > 1 else {}
    return {
        "dataset": dataset.model_dump(mode="json"),
        "recipe": section.model_dump(mode="json", exclude=_NOT_LEARNT),
        "seed": seed,
        **world,
    }


def _first_difference(old: Any, new: Any, path: str) -> tuple[str, Any, Any] | None:
    """(dotted key, old, new) of the first leaf where two JSON values differ, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            found = _first_difference(old.get(key), new.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    return None if old == new else (path, old, new)


def _check_resumable(
    path: Path, checkpoint: TrainCheckpoint, config: models.ModelConfig, identity: dict[str, Any]
) -> None:
    saved = {"model": config_to_dict(checkpoint.model_config), **checkpoint.identity}
    found = _first_difference(saved, {"model": config_to_dict(config), **identity}, "")
    if found:
        key, old, new = found
        raise BenchError(
            f"cannot resume from {path}: it was made with a different {key.lstrip('.')} "
            f"({json.dumps(old)[:80]}, now {json.dumps(new)[:80]})"
        )


def _accel(section: TrainSection, device: str) -> Accel:
    return Accel(
        select_device(device),
        precision=section.precision,
        channels_last=section.channels_last,
        compile=section.compile,
        compile_mode=section.compile_mode,
    )


def _cpu_threads(section: TrainSection, kept: int | None) -> tuple[int, str]:
    """Set this process's intra-op threads for CPU training (torchrun ranks keep the one thread
    torchrun gives each) and say how many and why. A resumed run keeps the count its
    checkpoint recorded (`kept`): other threads sum in another order, and the run would not
    end as one that never stopped."""
    if kept is not None:
        count, why = kept, f"{kept} threads (kept from the run being resumed)"
    else:
        count, why = training_threads(section.threads)
    torch.set_num_threads(count)
    return count, why


def _free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def train(
    model: models.ResNeSt,
    dataset: Dataset,
    work_dir: str | Path,
    section: TrainSection,
    *,
    device: str,
    seed: int,
    resume: bool = False,
    callbacks: Callbacks | None = None,
    init: WeightsInit | None = None,
    suite: str = "",
    ranks: Ranks | None = None,
) -> TrainingRun:
    """Train `model` in place on `dataset`, checkpointing into `work_dir` every
    section.checkpoint_every epochs and after the last.

    resume=True continues from work_dir's checkpoint when there is one (same model, data,
    recipe, precision and seed required); without it an existing checkpoint is an error, never
    overwritten. `init` records where a fine-tuned body came from; `suite` names the suite.
    `ranks` (under torchrun): data-parallel, rank 0 reads and writes work_dir, the others
    receive its checkpoint.
    """
    callbacks = callbacks or Callbacks()
    if model.config.num_classes != dataset.num_classes:
        raise BenchError(
            f"model {model.config.name} has {model.config.num_classes} outputs but dataset "
            f"{dataset.name} has {dataset.num_classes} classes"
        )
    accel = _accel(section, device)
    accel.configure_backends()
    work_dir = Path(work_dir)
    ckpt_path = work_dir / CHECKPOINT_NAME
    dataset_info = _dataset_info(dataset)
    identity = _identity(dataset_info, section, seed, ranks)
    start = None
    if ranks is None or ranks.writer:
        if ckpt_path.exists():
            if not resume:
                raise BenchError(f"{ckpt_path} exists: resume that run or choose a new directory")
            start = read_checkpoint(ckpt_path)
            _check_resumable(ckpt_path, start, model.config, identity)
        work_dir.mkdir(parents=True, exist_ok=True)
    start = broadcast(ranks, start)
    cpu_threads, threads_before = None, torch.get_num_threads()
    if accel.device.type == "cpu" and ranks is None:
        cpu_threads = _cpu_threads(section, start.cpu_threads if start else None)
    model_info = _model_info(model, dataset.image_size)
    # Weights to restart from when a fresh run must retry at a smaller batch size.
    initial = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    batch_size = start.batch_size if start else section.batch_size
    trainer = partial(DistributedTrainer, ranks=ranks) if ranks else Trainer
    failed = list(start.failed_batch_sizes) if start else []

    while True:
        try:
            records = run_epochs(
                trainer(model, dataset, section, accel, batch_size=batch_size, seed=seed),
                work_dir,
                start=start,
                identity=identity,
                failed_batch_sizes=failed,
                callbacks=callbacks,
                flops_per_image=model_info.flops_per_train_image,
                seed=seed,
                cpu_threads=cpu_threads[0] if cpu_threads else None,
            )
            break
        except torch.cuda.OutOfMemoryError:
            pass  # handled below, once the exception (and the activations it holds) is gone
        _free_device_memory(accel.device)
        failed.append(batch_size)
        if not section.auto_batch or start is not None or batch_size == 1 or ranks:
            hint = "" if section.auto_batch else " (auto_batch retries at half the batch size)"
            raise BenchError(f"out of GPU memory at batch size {batch_size}{hint}")
        batch_size //= 2
        model.load_state_dict(initial)  # the smaller batch restarts from the same weights

    torch.set_num_threads(threads_before)  # the policy is training's, not the process's
    threads, threads_reason = cpu_threads or (None, None)
    return TrainingRun(
        config={"suite": suite} if suite else {},
        recipe=Recipe.of(section),
        options=RunOptions.of(section, device=str(accel.device), seed=seed).model_copy(
            update={"cpu_threads": threads, "threads_reason": threads_reason}
        ),
        accel=accel.describe(),
        dataset=dataset_info,
        model=model_info,
        batch_size=batch_size,
        failed_batch_sizes=failed,
        init=init,
        resumed_from_epoch=start.epoch if start else None,
        distributed=describe(section, ranks, batch_size) if ranks else None,
        epochs=records,
        summary=summarize(records, epochs_planned=section.epochs, target=section.target_accuracy),
        files=TrainingFiles(checkpoint=CHECKPOINT_NAME, epoch_log=EPOCH_LOG_NAME),
    )
