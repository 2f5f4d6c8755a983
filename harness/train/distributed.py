"""Data-parallel training in processes started by torchrun: ranks, process group, DDP trainer.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in every process; each one runs the same command.
`suite.train.batch_size` is per rank, so the global batch is ranks x batch_size, and every rank
draws the same seeded epoch (order and augmentation) and trains on its slice of each global
batch (DeviceLoader.shard): N ranks see the images one rank with the global batch would.
Rank 0 alone reads and writes checkpoints, logs and reports; the others get its checkpoint
over the process group, so nodes need no shared folder. A rank that dies or goes silent
ends every other rank with one line (BenchError) within the group's timeout, or sooner when
torchrun stops them.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from resnest_bench import models
from resnest_bench.harness.config import TrainSection
from resnest_bench.harness.data import Dataset
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.gpu.accel import Accel
from resnest_bench.harness.results.training import DistributedRun
from resnest_bench.harness.train.loop import Trainer

# Test hook, "RANK:EPOCH:BATCH": that rank exits abruptly (no cleanup, as if killed) after
# training batch BATCH of epoch EPOCH (both 1-based).
CRASH_ENV = "RESNEST_BENCH_CRASH_RANK_AT_BATCH"


@dataclass(frozen=True)
class Ranks:
    """This process's place among torchrun's processes."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def writer(self) -> bool:
        """Rank 0 writes checkpoints, logs, result.json and reports; the others write nothing."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process on its node (LOCAL_RANK); the CPU is shared."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device


def ranks_from_env() -> Ranks | None:
    """Ranks from torchrun's environment, or None in a plain (single-process) run."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        return Ranks(
            rank=int(os.environ["RANK"]),
            world_size=int(os.environ["WORLD_SIZE"]),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )
    except ValueError:
        raise BenchError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)"
        ) from None


def _peer_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, dist.DistError) or any(
        word in text for word in ("gloo", "nccl", "connection", "timed out", "peer")
    )


@contextmanager
def process_group(ranks: Ranks, device: torch.device, timeout_s: float) -> Iterator[None]:
    """The process group (NCCL on CUDA, Gloo on CPU) around a run; a collective that fails
    because another rank died or fell silent becomes one BenchError line."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as exc:
        raise BenchError(
            f"rank {ranks.rank}: cannot join the process group: {_line(exc)}"
        ) from None
    try:
        yield
    except RuntimeError as exc:
        if not _peer_failure(exc):
            raise
        raise BenchError(
            f"rank {ranks.rank} of {ranks.world_size}: another rank stopped or stopped answering "
            f"({_line(exc)}); nothing was published"
        ) from None
    finally:
        dist.destroy_process_group()


def _line(exc: BaseException) -> str:
    """The first line of a backend error, without its C++ source location."""
    text = re.sub(r"\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", str(exc)).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


@contextmanager
def local_first(ranks: Ranks | None) -> Iterator[None]:
    """Each node's local rank 0 runs the body first (a download, a cache), then the others."""
    if ranks is not None and ranks.local_rank != 0:
        dist.barrier()
    yield
    if ranks is not None and ranks.local_rank == 0:
        dist.barrier()


def broadcast(ranks: Ranks | None, value: Any) -> Any:
    """Rank 0's `value` on every rank (a checkpoint to resume from, or None)."""
    if ranks is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def scaled_section(section: TrainSection, ranks: Ranks) -> TrainSection:
    """The recipe as the ranks run it: lr after the scaling rule (linear: x ranks)."""
    factor = ranks.world_size if section.lr_scaling == "linear" else 1
    return section.model_copy(update={"lr": section.lr * factor})


def describe(section: TrainSection, ranks: Ranks, batch_size: int) -> DistributedRun:
    return DistributedRun(
        world_size=ranks.world_size,
        backend=dist.get_backend(),
        batch_size=batch_size,
        global_batch_size=batch_size * ranks.world_size,
        lr_scaling=section.lr_scaling,
        lr=scaled_section(section, ranks).lr,
        sync_batchnorm=section.sync_batchnorm,
    )


def _crash_hook(rank: int, epoch: int) -> Callable[[int, int], None] | None:
    """The CRASH_ENV test hook when it names this rank and 0-based `epoch`, else None."""
    spec = [int(part) for part in os.environ.get(CRASH_ENV, "").split(":") if part]
    if len(spec) != 3 or spec[:2] != [rank, epoch + 1]:
        return None

    def crash(i: int, _: int) -> None:
        if i >= spec[2]:
            os._exit(17)

    return crash


class DistributedTrainer(Trainer):
    """A Trainer whose model is wrapped in DistributedDataParallel, whose training loader is
    sharded, and whose epoch figures are gathered over the ranks (rank 0 records them)."""

    def __init__(
        self,
        model: models.ResNeSt,
        dataset: Dataset,
        section: TrainSection,
        accel: Accel,
        *,
        batch_size: int,
        seed: int,
        ranks: Ranks,
    ) -> None:
        self.ranks = ranks
        if section.sync_batchnorm and accel.device.type != "cuda":
            raise BenchError(
                "sync_batchnorm needs CUDA ranks (PyTorch's SyncBatchNorm has no CPU kernels)"
            )
        if section.sync_batchnorm:
            nn.SyncBatchNorm.convert_sync_batchnorm(model)  # in place below the top module
        super().__init__(
            model, dataset, scaled_section(section, ranks), accel, batch_size=batch_size, seed=seed
        )
        self.writes_files = ranks.writer
        self.train_loader.shard(ranks.rank, ranks.world_size)

    def _prepare(self, model: nn.Module) -> nn.Module:
        """DDP around the model on its device, compiled after wrapping when asked (the order
        torch.compile supports)."""
        placed = replace(self.accel, compile=False).prepare(model)
        ids = [self.accel.device.index] if self.accel.device.type == "cuda" else None
        return self.accel.prepare(DistributedDataParallel(placed, device_ids=ids))

    def train_epoch(self, epoch: int, on_batch: Callable[[int, int], None] | None) -> dict:
        on_batch = _crash_hook(self.ranks.rank, epoch) or on_batch
        own = super().train_epoch(epoch, on_batch)
        loss = own["train_loss"] if own["train_loss"] is not None else float("nan")
        mine = torch.tensor(
            [loss * own["images"], own["train_acc"] * own["images"], own["images"], own["train_s"]],
            dtype=torch.float64,
            device=self.accel.device,
        )
        every = [torch.zeros_like(mine) for _ in range(self.ranks.world_size)]
        dist.all_gather(every, mine)
        loss_sum, correct, images, _ = torch.stack(every).sum(0).tolist()
        train_s = max(float(row[3]) for row in every)
        total_loss = loss_sum / images
        return {
            **own,
            "images": int(images),
            "train_s": train_s,
            "train_loss": total_loss if math.isfinite(total_loss) else None,
            "train_acc": correct / images,
            "world_size": self.ranks.world_size,
            "rank_images_per_s": [float(row[2] / row[3]) for row in every],
        }
