"""Batches straight from device memory: the whole set lives on the device as uint8.

Shuffling, random crop (from `pad` pixels of zero padding, 4 by default) and horizontal flip
(unless turned off) are a handful of tensor ops per batch (no per-image Python, no worker
processes), as in airbench. All randomness comes from a CPU
torch.Generator seeded by (seed, epoch), so the same epoch yields the same batches on any
device, and a resumed run sees exactly what an uninterrupted one would have seen.
A sharded loader (shard(rank, world_size), data-parallel training) draws the same epoch and
yields only its rank's slice of every global batch: N ranks see what one rank would.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from resnest_bench.harness.data.types import ImageSet, Triple, normalize
from resnest_bench.harness.errors import BenchError

PAD = 4


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator whose stream depends on both numbers (no seed+epoch collisions)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def crop_and_flip(
    images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int = PAD
) -> torch.Tensor:
    """Zero-pad by `pad`, take the HxW window at `offsets` (N, 2), mirror where `flips` (N,).

    One gather does crop and flip together: each output pixel names its source row/column.
    """
    n, channels, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    rows = offsets[:, :1] + torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device).expand(n, width)
    cols = torch.where(flips[:, None], width - 1 - cols, cols) + offsets[:, 1:]
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    chan = torch.arange(channels, device=images.device).view(1, channels, 1, 1)
    return padded[batch, chan, rows.view(n, 1, height, 1), cols.view(n, 1, 1, width)]


class DeviceLoader:
    """Iterable of (float32 normalised images, int64 labels) batches on `device`.

    train=True: reshuffled every epoch, augmented (random crop from `pad` pixels of zero
    padding, horizontal flip when `flip`), last partial batch dropped by default.
    train=False: original order, no augmentation, every sample seen once.
    Each iteration uses the current epoch and then advances it; set_epoch(e) chooses the
    epoch the next iteration uses (call it when resuming).
    """

    def __init__(
        self,
        imageset: ImageSet,
        *,
        batch_size: int,
        mean: Triple,
        std: Triple,
        train: bool,
        device: torch.device | str,
        seed: int = 0,
        drop_last: bool | None = None,
        channels_last: bool = False,
        flip: bool = True,
        pad: int = PAD,
    ) -> None:
        if batch_size <= 0:
            raise BenchError(f"batch size must be positive, got {batch_size}")
        self.device = torch.device(device)
        self.images = imageset.images.to(self.device)
        self.labels = imageset.labels.to(self.device)
        self.batch_size = batch_size
        self.mean, self.std = mean, std
        self.train = train
        self.seed = seed
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.flip, self.pad = flip, pad
        self.epoch = 0
        self.rank, self.world_size = 0, 1
        if len(self) == 0:
            raise BenchError(
                f"batch size {batch_size} exceeds the {len(self.labels)} images "
                f"and the partial batch is dropped: use a smaller batch size"
            )

    def __len__(self) -> int:
        full, rest = divmod(len(self.labels), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self, rank: int, world_size: int) -> None:
        """Make batch_size `rank`'s part of a global batch world_size times larger: every rank
        draws the same global batches (same order, same augmentation) and yields its slice."""
        self.batch_size *= world_size
        self.rank, self.world_size = rank, world_size
        if len(self) == 0:
            raise BenchError(
                f"global batch {self.batch_size} ({world_size} ranks) exceeds the "
                f"{len(self.labels)} images: use a smaller batch size or fewer ranks"
            )

    def _batch(self, index: torch.Tensor, aug: tuple[torch.Tensor, torch.Tensor] | None):
        images = self.images[index]
        if aug is not None:
            images = crop_and_flip(images, aug[0][index], aug[1][index], self.pad)
        x = normalize(images, self.mean, self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[index]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        if self.train:
            gen = _epoch_generator(self.seed, self.epoch)
            order = torch.randperm(n, generator=gen).to(self.device)
            offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=gen).to(self.device)
            flips = (torch.rand(n, generator=gen) < 0.5).to(self.device) & self.flip
            aug = (offsets, flips)  # indexed by sample, so a sample's draw ignores batching
        else:
            order, aug = torch.arange(n, device=self.device), None
        self.epoch += 1
        part = self.batch_size // self.world_size
        for start in range(self.rank * part, len(self) * self.batch_size, self.batch_size):
            yield self._batch(order[start : start + part], aug)
