"""The epoch loop: one SGD step, one timed epoch, one evaluation, a checkpoint every
`checkpoint_every` epochs (and after the last).

One epoch = augmented batches from device memory, timed between two device synchronisations;
the test-set evaluation after it is timed apart and excluded from training time, as DAWNBench
does. The learning rate is a pure function of the epoch and the checkpoint holds every state
that changes (model, optimizer, loss scaler, RNG), so a resumed run continues exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnest_bench import models
from resnest_bench.harness.checkpoints import TrainCheckpoint, write_checkpoint
from resnest_bench.harness.clock import cuda_sync
from resnest_bench.harness.config import TrainSection
from resnest_bench.harness.data import Dataset, DeviceLoader
from resnest_bench.harness.gpu.accel import Accel, PowerMeter, peak_memory_bytes, reset_peak_memory
from resnest_bench.harness.host import load as hostload
from resnest_bench.harness.results.training import EpochRecord
from resnest_bench.harness.store.atomic import atomic_write_text

CHECKPOINT_NAME = "checkpoint.pt"
EPOCH_LOG_NAME = "epochs.jsonl"


@dataclass(frozen=True)
class Callbacks:
    """Progress hooks for the CLI; the library itself never prints.

    on_batch(i, n) runs after training batch i (1-based) of n, inside the timed region, so it
    must be cheap; on_epoch_end(record) runs after the epoch, and its checkpoint when one is
    due, is on disk.
    """

    on_epoch_end: Callable[[EpochRecord], None] | None = None
    on_batch: Callable[[int, int], None] | None = None


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


class Trainer:
    """One attempt at one batch size: model on the device, optimizer, scaler, loaders."""

    writes_files = True  # False on data-parallel ranks other than 0 (train/distributed.py)

    def __init__(
        self,
        model: models.ResNeSt,
        dataset: Dataset,
        section: TrainSection,
        accel: Accel,
        *,
        batch_size: int,
        seed: int,
    ) -> None:
        self.model, self.section, self.accel, self.batch_size = model, section, accel, batch_size
        self.runner = self._prepare(model)
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=section.lr,
            momentum=section.momentum,
            weight_decay=section.weight_decay,
            fused=True if accel.fused_sgd else None,  # None: PyTorch's default (foreach)
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
        self.train_loader = DeviceLoader(
            dataset.train, train=True, flip=section.flip, pad=section.crop_padding, **loader_args
        )
        self.test_loader = DeviceLoader(dataset.test, train=False, **loader_args)
        self.sync = cuda_sync(accel.device) or (lambda: None)
        self.meter = PowerMeter.for_device(accel.device)

    def _prepare(self, model: nn.Module) -> nn.Module:
        """What to call for training: the model on the device, compiled when asked."""
        return self.accel.prepare(model)

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

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.accel.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.accel.device)

    def train_epoch(self, epoch: int, on_batch: Callable[[int, int], None] | None) -> dict:
        """Train 0-based `epoch`; the timed region is bracketed by device synchronisation.

        Returns the EpochRecord fields an epoch of training measures.
        """
        lr = self.section.lr_at(epoch)
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
                self.section.label_smoothing,
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
        """The EpochRecord fields of one pass over the test set (timed apart from training)."""
        self.runner.eval()
        # Sums stay on the device and are read at the end (two reads, the first waits): a read
        # per batch would make the host wait for every batch before queueing the next.
        loss_sum = torch.zeros((), device=self.accel.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.accel.device)
        images = 0
        start = time.perf_counter()
        for x, y in self.test_loader:
            with self.accel.autocast():
                logits = self.runner(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            images += len(y)
        self.sync()
        return {
            "eval_s": time.perf_counter() - start,
            "test_loss": _finite(loss_sum.item() / images),
            "test_top1": correct.item() / images,
        }

    def weights_finite(self) -> bool:
        """Every weight finite, in one host read: the largest |w| of each tensor (NaN if any is
        NaN) in one foreach op, then one check of them all."""
        with torch.no_grad():
            largest = torch._foreach_norm(list(self.model.parameters()), ord=math.inf)
            return bool(torch.isfinite(torch.stack(largest)).all())


def write_epoch_log(path: Path, records: Sequence[EpochRecord]) -> None:
    """Rewrite the whole log atomically: readers never see a torn line, and after a resume the
    log holds exactly the checkpoint's epochs (an append could leave an epoch whose checkpoint
    was never written, or a duplicate). At 250 short lines the rewrite costs nothing."""
    atomic_write_text(path, "".join(r.model_dump_json() + "\n" for r in records))


def run_epochs(
    trainer: Trainer,
    work_dir: Path,
    *,
    start: TrainCheckpoint | None,
    identity: dict[str, Any],
    failed_batch_sizes: Sequence[int],
    callbacks: Callbacks,
    flops_per_image: int,
    seed: int,
    cpu_threads: int | None = None,
) -> list[EpochRecord]:
    """Epochs from the checkpoint's (or the first) to the recipe's last; returns all records."""
    if start is not None:
        trainer.load_state_dict(start.state)
        records = list(start.records)
    else:
        torch.manual_seed(seed)
        records = []
    peak = trainer.accel.peak_flops()
    epochs, every, warm = trainer.section.epochs, trainer.section.checkpoint_every, False
    # A network whose weights became NaN/inf has diverged: further epochs would only burn time.
    while len(records) < epochs and not (records and not records[-1].weights_finite):
        epoch = len(records)
        before = hostload.snapshot()
        trained = trainer.train_epoch(epoch, callbacks.on_batch)
        evaluated = trainer.evaluate()
        load = hostload.host_load(before, hostload.snapshot())
        train_s, images = trained["train_s"], trained["images"]
        flops_per_s = flops_per_image * images / train_s
        record = EpochRecord(
            **trained,
            **evaluated,
            epoch=epoch + 1,
            batch_size=trainer.batch_size,
            warmup=not warm,  # first epoch of this process: compile, autotune, caches
            cumulative_train_s=train_s + (records[-1].cumulative_train_s if records else 0.0),
            images_per_s=images / train_s,
            weights_finite=trainer.weights_finite(),
            flops_per_s=flops_per_s,
            mfu=flops_per_s / peak if peak else None,
            other_cores=load.other_cores,
        )
        warm = True
        records.append(record)
        # Writing the state costs a device->host copy of every tensor; the last epoch (or a
        # diverged one, which ends the run) is always written, so the run's end is resumable.
        if not trainer.writes_files:
            continue
        if len(records) % every == 0 or len(records) == epochs or not record.weights_finite:
            checkpoint = TrainCheckpoint(
                model_config=trainer.model.config,
                identity=identity,
                state=trainer.state_dict(),
                batch_size=trainer.batch_size,
                failed_batch_sizes=tuple(failed_batch_sizes),
                records=tuple(records),
                cpu_threads=cpu_threads,
            )
            write_checkpoint(work_dir / CHECKPOINT_NAME, checkpoint)
            write_epoch_log(work_dir / EPOCH_LOG_NAME, records)
        if callbacks.on_epoch_end is not None:
            callbacks.on_epoch_end(record)
    return records
