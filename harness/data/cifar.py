"""CIFAR-10 / CIFAR-100 from the official binary archives (no unpickling of downloaded data).

Record layout (https://www.cs.toronto.edu/~kriz/cifar.html): label byte(s), then 3072 pixel
bytes as three 32x32 row-major planes R, G, B, which is already NCHW.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resnest_bench.harness.data.download import ArchiveSource, Progress, ensure_extracted
from resnest_bench.harness.data.types import ImageSet
from resnest_bench.harness.errors import BenchError

_PIXELS = 3 * 32 * 32
# Both official archives: 50,000 training and 10,000 test images. A file short by whole
# records has a valid size, so only the count tells (it trained on 45,000 without a word).
OFFICIAL_IMAGES = {"train": 50_000, "test": 10_000}


@dataclass(frozen=True)
class CifarFormat:
    """Everything that differs between the two CIFAR archives."""

    source: ArchiveSource
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    names_file: str
    extra_files: tuple[str, ...]
    label_ranges: tuple[int, ...]  # one per label byte; the last byte is the label we use

    @property
    def record_size(self) -> int:
        return len(self.label_ranges) + _PIXELS

    @property
    def members(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.names_file, *self.extra_files)


CIFAR_FORMATS = {
    "cifar10": CifarFormat(
        source=ArchiveSource(
            "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            "c32a1d4ab5d03f1284b67883e8d87530",
        ),
        folder="cifar-10-batches-bin",
        train_files=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        test_files=("test_batch.bin",),
        names_file="batches.meta.txt",
        extra_files=(),
        label_ranges=(10,),
    ),
    "cifar100": CifarFormat(
        source=ArchiveSource(
            "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
            "03b5dce01913d631647c71ecec9e9cb8",
        ),
        folder="cifar-100-binary",
        train_files=("train.bin",),
        test_files=("test.bin",),
        names_file="fine_label_names.txt",
        extra_files=("coarse_label_names.txt",),
        label_ranges=(20, 100),  # coarse, fine
    ),
}


def read_records(path: Path, fmt: CifarFormat) -> ImageSet:
    """Parse one .bin file, refusing anything whose size or labels do not fit the format."""
    data = path.read_bytes()
    size = fmt.record_size
    if not data or len(data) % size:
        raise BenchError(
            f"{path} is truncated ({len(data):,} bytes, expected a multiple of "
            f"{size}): delete it and run again to restore it"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, size)
    for column, limit in enumerate(fmt.label_ranges):
        bad = np.flatnonzero(records[:, column] >= limit)
        if bad.size:
            raise BenchError(
                f"{path} is corrupt (record {bad[0]} has label "
                f"{records[bad[0], column]}, expected < {limit}): delete it and "
                f"run again to restore it"
            )
    labels = records[:, len(fmt.label_ranges) - 1].astype(np.int64)
    pixels = np.ascontiguousarray(records[:, -_PIXELS:]).reshape(-1, 3, 32, 32)
    return ImageSet(torch.from_numpy(pixels), torch.from_numpy(labels))


def _read_split(
    folder: Path, files: tuple[str, ...], fmt: CifarFormat, expected: int | None
) -> ImageSet:
    """The files of one split; with `expected` (the official archive), each must hold its
    share of the split's images."""
    parts = [read_records(folder / name, fmt) for name in files]
    for name, part in zip(files, parts, strict=True):
        if expected is not None and len(part) != expected // len(files):
            raise BenchError(
                f"{folder / name} holds {len(part):,} images, expected "
                f"{expected // len(files):,}: delete it and run again to restore it"
            )
    return ImageSet(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))


def _read_names(path: Path, expected: int) -> tuple[str, ...]:
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if len(names) != expected:
        raise BenchError(
            f"{path} lists {len(names)} class names, expected {expected}: delete it "
            f"and run again to restore it"
        )
    return names


def load_cifar(
    name: str,
    root: Path,
    *,
    download: bool,
    source: ArchiveSource | None = None,
    progress: Progress | None = None,
) -> tuple[ImageSet, ImageSet, tuple[str, ...], str]:
    """(train, test, class names, source URL) for "cifar10" or "cifar100"."""
    fmt = CIFAR_FORMATS[name]
    src = source or fmt.source
    folder = ensure_extracted(
        src, root, fmt.folder, fmt.members, download=download, progress=progress
    )
    classes = _read_names(folder / fmt.names_file, fmt.label_ranges[-1])
    # an archive given instead of the official one (a test's, a mirror's) has its own size
    counts = OFFICIAL_IMAGES if src == fmt.source else {}
    train = _read_split(folder, fmt.train_files, fmt, counts.get("train"))
    test = _read_split(folder, fmt.test_files, fmt, counts.get("test"))
    return train, test, classes, src.url
