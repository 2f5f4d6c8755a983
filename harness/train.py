"""Train (or fine-tune) a ResNeSt on a Dataset and time every epoch: the training benchmark.

One epoch = augmented batches from device memory, timed between two device synchronisations;
the test-set evaluation after it is timed apart and excluded from training time, as DAWNBench
does. Each completed epoch is checkpointed atomically with everything a resume needs (model,
optimizer, loss scaler, RNG, records), and the learning rate is a pure function of the epoch,
so a killed run resumed from its last checkpoint ends with the same weights as one that never
stopped (bit-exact on CPU; cuDNN autotuning makes GPU runs merely statistically equal).

Default recipes are the seed study's (Fu and Ge, Table 1): CIFAR-10 SGD 0.1, batch 128, 250
epochs, x0.1 at epochs 80 and 210; transfer: batch 64, x0.1 every 60 epochs, 200 epochs.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnest_bench import models
from resnest_bench.harness.accel import (
    Accel,
    PowerMeter,
    peak_memory_bytes,
    reset_peak_memory,
    select_device,
)
from resnest_bench.harness.atomic import atomic_torch_save, atomic_write_text
from resnest_bench.harness.data import Dataset, DeviceLoader
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.measure.timing import cuda_sync
from resnest_bench.harness.results.stats import Stats
from resnest_bench.models.profile import count_macs, count_params
from resnest_bench.models.weights import detect_source, load_file, load_pretrained, read_state_dict

CHECKPOINT_NAME = "checkpoint.pt"
EPOCH_LOG_NAME = "epochs.jsonl"
CHECKPOINT_FORMAT = "resnest-bench/train-checkpoint"
CHECKPOINT_VERSION = 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Recipe:
    """Optimiser and schedule. The LR is multiplied by `gamma` at each milestone epoch, or
    every `step_size` epochs when that is set (then milestones must be empty)."""

    epochs: int = 250
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (80, 210)
    step_size: int | None = None
    gamma: float = 0.1
    label_smoothing: float = 0.0

    @classmethod
    def cifar10_default(cls) -> Recipe:
        return cls()

    @classmethod
    def transfer_default(cls) -> Recipe:
        return cls(epochs=200, batch_size=64, milestones=(), step_size=60)

    def __post_init__(self) -> None:
        if not isinstance(self.milestones, tuple | list):
            raise BenchError(f"recipe milestones must be a list of epochs, got {self.milestones!r}")
        object.__setattr__(self, "milestones", tuple(self.milestones))
        checks = (
            ("epochs", _is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("batch_size", _is_int(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
            ("lr", _is_number(self.lr) and self.lr > 0, "a finite number > 0"),
            ("momentum", _is_number(self.momentum) and 0 <= self.momentum < 1, "in [0, 1)"),
            (
                "weight_decay",
                _is_number(self.weight_decay) and self.weight_decay >= 0,
                "a finite number >= 0",
            ),
            (
                "milestones",
                all(_is_int(m) and m >= 1 for m in self.milestones)
                and list(self.milestones) == sorted(set(self.milestones)),
                "strictly increasing integers >= 1",
            ),
            (
                "step_size",
                self.step_size is None or (_is_int(self.step_size) and self.step_size >= 1),
                "an integer >= 1 or None",
            ),
            ("gamma", _is_number(self.gamma) and 0 < self.gamma <= 1, "in (0, 1]"),
            (
                "label_smoothing",
                _is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
                "in [0, 1)",
            ),
        )
        for name, ok, wanted in checks:
            if not ok:
                raise BenchError(f"recipe {name} must be {wanted}, got {getattr(self, name)!r}")
        if self.step_size is not None and self.milestones:
            raise BenchError("recipe milestones and step_size exclude each other; set one")

    def lr_at(self, epoch: int) -> float:
        """LR of 0-based `epoch`, with MultiStepLR/StepLR semantics (milestone 80 = 81st epoch)."""
        if self.step_size is not None:
            decays = epoch // self.step_size
        else:
            decays = sum(1 for m in self.milestones if m <= epoch)
        return self.lr * self.gamma**decays

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["milestones"] = list(self.milestones)
        return out


@dataclass(frozen=True)
class TrainOptions:
    """How to run (not what to learn): device, speed settings, seed, target, OOM policy."""

    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    seed: int = 0
    target_top1: float = 0.89
    auto_batch: bool = False

    def __post_init__(self) -> None:
        if not _is_int(self.seed) or self.seed < 0:
            raise BenchError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not _is_number(self.target_top1) or not 0 < self.target_top1 <= 1:
            raise BenchError(f"target top-1 must be in (0, 1], got {self.target_top1!r}")

    def accel(self) -> Accel:
        return Accel(
            select_device(self.device),
            precision=self.precision,
            channels_last=self.channels_last,
            compile=self.compile,
            compile_mode=self.compile_mode,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Callbacks:
    """Progress hooks for the CLI; the library itself never prints.

    on_batch(i, n) runs after training batch i (1-based) of n, inside the timed region, so it
    must be cheap; on_epoch_end(record) runs after the epoch's checkpoint is on disk.
    """

    on_epoch_end: Callable[[dict[str, Any]], None] | None = None
    on_batch: Callable[[int, int], None] | None = None


@dataclass(frozen=True)
class WeightsInit:
    """Where a fine-tuned model's body came from, for the result."""

    path: str
    source: str  # "ours" | "official"
    skipped: tuple[str, ...]  # key prefixes left at their fresh init ("fc." and maybe "stem.")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "source": self.source, "skipped": list(self.skipped)}


def create_seeded_model(name: str, *, seed: int, **overrides: Any) -> models.ResNeSt:
    """models.create_model with its random init fixed by `seed`, leaving the global RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return models.create_model(name, **overrides)
        except models.ModelError as exc:
            raise BenchError(str(exc)) from None


def load_transfer_weights(
    model: models.ResNeSt,
    path: str | Path,
    *,
    num_classes: int,
    source: str = "auto",
    seed: int = 0,
) -> WeightsInit:
    """Load a body from our training checkpoint or official/timm ImageNet weights, then give
    the model a fresh `num_classes` head.

    The head never transfers. The stem is skipped too (keeping the model's own fresh init) when
    its kind differs: an ImageNet deep stem's tensors have no place in a CIFAR stem. Every other
    tensor must fit exactly.
    """
    try:
        state = read_state_dict(path)
        fmt = detect_source(state) if source == "auto" else source
        deep_stem = any(k.startswith(("stem.3.", "conv1.3.")) for k in state)
        skip = ("fc.",) if (model.config.stem == "imagenet") == deep_stem else ("fc.", "stem.")
        load_pretrained(model, path, source=fmt, skip=skip)
    except models.ModelError as exc:
        raise BenchError(str(exc)) from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.reset_classifier(num_classes)
    return WeightsInit(str(path), fmt, skip)


# ---------------------------------------------------------------------------------------------
# The result and its schema


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, recursively (JSON has no NaN; our writer refuses it)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class TrainResult:
    """Everything a training run measured; `to_dict()` matches harness.schema.TRAINING_SPEC."""

    config: dict[str, Any]
    recipe: Recipe
    options: TrainOptions
    accel: dict[str, Any]
    dataset: dict[str, Any]
    model: dict[str, Any]
    batch_size: int
    failed_batch_sizes: tuple[int, ...]
    init: WeightsInit | None
    resumed_from_epoch: int | None
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    run_dir: Path = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(
            {
                "config": self.config,
                "recipe": self.recipe.to_dict(),
                "options": self.options.to_dict(),
                "accel": self.accel,
                "dataset": self.dataset,
                "model": self.model,
                "batch_size": self.batch_size,
                "failed_batch_sizes": list(self.failed_batch_sizes),
                "init": self.init.to_dict() if self.init else None,
                "resumed_from_epoch": self.resumed_from_epoch,
                "epochs": self.records,
                "summary": self.summary,
                "files": {"checkpoint": CHECKPOINT_NAME, "epoch_log": EPOCH_LOG_NAME},
            }
        )


def summarize(records: list[dict[str, Any]], *, epochs_planned: int, target: float) -> dict:
    """Epoch 1 (warm-up, compile, autotune) apart; steady state over the other epochs."""
    steady = [r for r in records if not r["warmup"]]
    top1 = [r["test_top1"] for r in records]
    reached = next((r for r in records if r["test_top1"] >= target), None)
    best = max(records, key=lambda r: r["test_top1"]) if records else None
    energies = [r["energy_j"] for r in records]
    mfus = [r["mfu"] for r in steady if r["mfu"] is not None]
    diverged = [r["epoch"] for r in records if not r["weights_finite"]]
    return {
        "epochs_planned": epochs_planned,
        "epochs_completed": len(records),
        "first_epoch_s": records[0]["train_s"] if records else None,
        "steady_epoch_s": (
            Stats.from_samples([r["train_s"] for r in steady]).model_dump() if steady else None
        ),
        "steady_images_per_s": (
            statistics.median(r["images_per_s"] for r in steady) if steady else None
        ),
        "steady_mfu": statistics.median(mfus) if mfus else None,
        "target_top1": target,
        "time_to_target_s": reached["cumulative_train_s"] if reached else None,
        "epochs_to_target": reached["epoch"] if reached else None,
        "best_test_top1": best["test_top1"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "final_test_top1": top1[-1] if top1 else None,
        "total_train_s": math.fsum(r["train_s"] for r in records),
        "total_eval_s": math.fsum(r["eval_s"] for r in records),
        "total_energy_j": (
            math.fsum(energies) if records and all(e is not None for e in energies) else None
        ),
        "diverged_at_epoch": diverged[0] if diverged else None,
    }


# ---------------------------------------------------------------------------------------------
# The loop


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    accel: Accel,
    label_smoothing: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step; returns (summed loss, correct count) as device tensors (no host sync)."""
    with accel.autocast():
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach().float() * len(y), (logits.argmax(1) == y).sum()


class _Trainer:
    """One attempt at one batch size: model on the device, optimizer, scaler, loaders."""

    def __init__(
        self,
        model: models.ResNeSt,
        dataset: Dataset,
        recipe: Recipe,
        accel: Accel,
        batch_size: int,
        seed: int,
    ) -> None:
        self.model, self.recipe, self.accel = model, recipe, accel
        self.runner = accel.prepare(model)
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
        )
        self.scaler = accel.grad_scaler()
        loader_args = {
            "batch_size": batch_size,
            "mean": dataset.mean,
            "std": dataset.std,
            "device": accel.device,
            "seed": seed,
            "channels_last": accel.channels_last,
        }
        self.train_loader = DeviceLoader(dataset.train, train=True, **loader_args)
        self.test_loader = DeviceLoader(dataset.test, train=False, **loader_args)
        self.sync = cuda_sync(accel.device) or (lambda: None)
        self.meter = PowerMeter.for_device(accel.device)

    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.accel.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.accel.device)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.accel.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.accel.device)

    def train_epoch(self, epoch: int, on_batch: Callable[[int, int], None] | None) -> dict:
        """Train 0-based `epoch`; the timed region is bracketed by device synchronisation."""
        lr = self.recipe.lr_at(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.train_loader.set_epoch(epoch)
        self.runner.train()
        n_batches = len(self.train_loader)
        loss_sum = torch.zeros((), device=self.accel.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.accel.device)
        images = 0
        reset_peak_memory(self.accel.device)
        self.sync()
        if self.meter is not None:
            self.meter.start()
        start = time.perf_counter()
        for i, (x, y) in enumerate(self.train_loader, 1):
            batch_loss, batch_correct = _train_step(
                self.runner,
                x,
                y,
                self.optimizer,
                self.scaler,
                self.accel,
                self.recipe.label_smoothing,
            )
            loss_sum += batch_loss
            correct += batch_correct
            images += len(y)
            if on_batch is not None:
                on_batch(i, n_batches)
        self.sync()
        train_s = time.perf_counter() - start
        energy = self.meter.stop() if self.meter is not None else None
        return {
            "lr": lr,
            "train_s": train_s,
            "images": images,
            "train_loss": _finite(loss_sum.item() / images),
            "train_acc": correct.item() / images,
            "peak_memory_bytes": peak_memory_bytes(self.accel.device),
            "energy_j": energy.joules if energy else None,
            "mean_power_w": energy.mean_watts if energy else None,
            "energy_method": energy.method if energy else None,
        }

    @torch.no_grad()
    def evaluate(self) -> dict:
        self.runner.eval()
        loss_sum, correct, images = 0.0, 0, 0
        start = time.perf_counter()
        for x, y in self.test_loader:
            with self.accel.autocast():
                logits = self.runner(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
            images += len(y)
        self.sync()
        return {
            "eval_s": time.perf_counter() - start,
            "test_loss": _finite(loss_sum / images),
            "test_top1": correct / images,
        }

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())


def _identity(
    model: models.ResNeSt, dataset: Dataset, recipe: Recipe, options: TrainOptions
) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (speed settings may change)."""
    return _json_safe(
        {
            "model": dataclasses.asdict(model.config),
            "dataset": _dataset_info(dataset),
            "recipe": recipe.to_dict(),
            "seed": options.seed,
            "precision": options.precision,
        }
    )


def _dataset_info(dataset: Dataset) -> dict[str, Any]:
    return {
        "name": dataset.name,
        "synthetic": dataset.synthetic,
        "source": dataset.source,
        "num_classes": dataset.num_classes,
        "image_size": dataset.image_size,
        "train_images": len(dataset.train),
        "test_images": len(dataset.test),
    }


def _model_info(model: models.ResNeSt, image_size: int) -> dict[str, Any]:
    cfg = model.config
    macs = count_macs(model, image_size)
    return {
        "name": cfg.name,
        "block": cfg.block,
        "stem": cfg.stem,
        "radix": cfg.radix,
        "cardinality": cfg.cardinality,
        "num_classes": cfg.num_classes,
        "params": count_params(model),
        "macs": macs,
        # forward + backward ~ 3 forward passes; a multiply-accumulate is 2 FLOPs
        "flops_per_train_image": 3 * macs * 2,
    }


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load one of our training checkpoints (weights_only: no code runs from the file)."""
    try:
        ckpt = load_file(path)
    except models.ModelError as exc:
        raise BenchError(str(exc)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise BenchError(f"{path} is not a resnest-bench training checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise BenchError(
            f"{path} is checkpoint version {ckpt.get('version')}; this build reads "
            f"version {CHECKPOINT_VERSION}"
        )
    return ckpt


def _first_difference(old: Any, new: Any, path: str) -> tuple[str, Any, Any] | None:
    """(dotted key, old, new) of the first leaf where two JSON values differ, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            found = _first_difference(old.get(key), new.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    return None if old == new else (path, old, new)


def _check_identity(path: Path, saved: str, current: dict[str, Any]) -> None:
    found = _first_difference(json.loads(saved), current, "")
    if found:
        key, old, new = found
        raise BenchError(
            f"cannot resume from {path}: it was made with a different {key.lstrip('.')} "
            f"({json.dumps(old)[:80]}, now {json.dumps(new)[:80]})"
        )


def _write_epoch_log(path: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite the whole log atomically: readers never see a torn line, and after a resume the
    log holds exactly the checkpoint's epochs (an append could leave an epoch whose checkpoint
    was never written, or a duplicate). At 250 short lines the rewrite costs nothing."""
    lines = [json.dumps(_json_safe(r), allow_nan=False) + "\n" for r in records]
    atomic_write_text(path, "".join(lines))


def _free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def train(
    model: models.ResNeSt,
    dataset: Dataset,
    run_dir: str | Path,
    *,
    recipe: Recipe,
    options: TrainOptions | None = None,
    resume: bool = False,
    callbacks: Callbacks | None = None,
    config: Mapping[str, Any] | None = None,
    init: WeightsInit | None = None,
) -> TrainResult:
    """Train `model` in place on `dataset`, checkpointing into `run_dir` after every epoch.

    resume=True continues from run_dir's checkpoint when there is one (same model, data,
    recipe, seed and precision required); without it an existing checkpoint is an error, never
    overwritten. `config` is the caller's JSON-able run config, stored for provenance.
    """
    options = options or TrainOptions()
    callbacks = callbacks or Callbacks()
    if model.config.num_classes != dataset.num_classes:
        raise BenchError(
            f"model {model.config.name} has {model.config.num_classes} outputs but dataset "
            f"{dataset.name} has {dataset.num_classes} classes"
        )
    accel = options.accel()
    accel.configure_backends()
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    identity = _identity(model, dataset, recipe, options)
    checkpoint = None
    if ckpt_path.exists():
        if not resume:
            raise BenchError(f"{ckpt_path} exists: resume that run or choose a new directory")
        checkpoint = read_checkpoint(ckpt_path)
        _check_identity(ckpt_path, checkpoint["identity"], identity)
    run_dir.mkdir(parents=True, exist_ok=True)
    model_info = _model_info(model, dataset.image_size)
    # Weights to restart from when a fresh run must retry at a smaller batch size.
    initial = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    batch_size = checkpoint["batch_size"] if checkpoint else recipe.batch_size
    failed: list[int] = list(checkpoint["failed_batch_sizes"]) if checkpoint else []

    while True:
        try:
            records = _run(
                model,
                dataset,
                run_dir,
                recipe=recipe,
                accel=accel,
                options=options,
                batch_size=batch_size,
                checkpoint=checkpoint,
                callbacks=callbacks,
                extra={
                    "identity": json.dumps(identity, sort_keys=True),
                    "failed_batch_sizes": failed,
                    "config": _json_safe(dict(config or {})),
                },
                flops_per_image=model_info["flops_per_train_image"],
            )
            break
        except torch.cuda.OutOfMemoryError:
            pass  # handled below, once the exception (and the activations it holds) is gone
        _free_device_memory(accel.device)
        failed.append(batch_size)
        if not options.auto_batch or checkpoint is not None or batch_size == 1:
            hint = "" if options.auto_batch else " (auto_batch retries at half the batch size)"
            raise BenchError(f"out of GPU memory at batch size {batch_size}{hint}")
        batch_size //= 2
        model.load_state_dict(initial)  # the smaller batch restarts from the same weights

    return TrainResult(
        config=_json_safe(dict(config or {})),
        recipe=recipe,
        options=options,
        accel=accel.describe(),
        dataset=_dataset_info(dataset),
        model=model_info,
        batch_size=batch_size,
        failed_batch_sizes=tuple(failed),
        init=init,
        resumed_from_epoch=checkpoint["epoch"] if checkpoint else None,
        records=records,
        summary=summarize(records, epochs_planned=recipe.epochs, target=options.target_top1),
        run_dir=run_dir,
    )


def _run(
    model: models.ResNeSt,
    dataset: Dataset,
    run_dir: Path,
    *,
    recipe: Recipe,
    accel: Accel,
    options: TrainOptions,
    batch_size: int,
    checkpoint: Mapping[str, Any] | None,
    callbacks: Callbacks,
    extra: dict[str, Any],
    flops_per_image: int,
) -> list[dict[str, Any]]:
    """Epochs from the checkpoint's (or the first) to the recipe's last; returns all records."""
    trainer = _Trainer(model, dataset, recipe, accel, batch_size, options.seed)
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint)
        records = list(checkpoint["records"])
    else:
        torch.manual_seed(options.seed)
        records = []
    peak = accel.peak_flops()
    warm = False
    # A network whose weights became NaN/inf has diverged: further epochs would only burn time.
    while len(records) < recipe.epochs and not (records and not records[-1]["weights_finite"]):
        epoch = len(records)
        trained = trainer.train_epoch(epoch, callbacks.on_batch)
        evaluated = trainer.evaluate()
        train_s = trained["train_s"]
        flops_per_s = flops_per_image * trained["images"] / train_s
        record = {
            "epoch": epoch + 1,
            "batch_size": batch_size,
            "lr": trained["lr"],
            "warmup": not warm,  # first epoch of this process: compile, autotune, caches
            "train_s": train_s,
            "eval_s": evaluated["eval_s"],
            "cumulative_train_s": train_s + (records[-1]["cumulative_train_s"] if records else 0),
            "images": trained["images"],
            "images_per_s": trained["images"] / train_s,
            "train_loss": trained["train_loss"],
            "train_acc": trained["train_acc"],
            "weights_finite": trainer.weights_finite(),
            "test_loss": evaluated["test_loss"],
            "test_top1": evaluated["test_top1"],
            "peak_memory_bytes": trained["peak_memory_bytes"],
            "energy_j": trained["energy_j"],
            "mean_power_w": trained["mean_power_w"],
            "energy_method": trained["energy_method"],
            "flops_per_s": flops_per_s,
            "mfu": flops_per_s / peak if peak else None,
        }
        warm = True
        records.append(record)
        atomic_torch_save(
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                **trainer.state_dict(),
                "model_config": _json_safe(dataclasses.asdict(model.config)),
                "epoch": len(records),
                "batch_size": batch_size,
                "records": records,
                **extra,
            },
            run_dir / CHECKPOINT_NAME,
        )
        _write_epoch_log(run_dir / EPOCH_LOG_NAME, records)
        if callbacks.on_epoch_end is not None:
            callbacks.on_epoch_end(record)
    return records
