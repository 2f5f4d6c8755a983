"""Users' own images: root/<class_name>/*.png|jpg, one sub-folder per class."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from resnest_bench.harness.errors import BenchError

from .split import stratified_split
from .types import ImageSet

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
TEST_FRACTION = 0.2


def _decode(path: Path, size: int) -> np.ndarray:
    """RGB, centre-cropped to a square and resized (bicubic) to size x size, as CHW uint8.

    Cropping before resizing keeps the aspect ratio: squashing would distort every image.
    """
    try:
        with Image.open(path) as img:
            square = ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.BICUBIC)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BenchError(f"{path} cannot be read as an image ({exc}): fix or remove it") from exc
    return np.asarray(square, dtype=np.uint8).transpose(2, 0, 1)


def _scan(folder: Path) -> tuple[tuple[str, ...], list[Path], list[int]]:
    """Class names (sorted sub-folder names) and every image path with its class index."""
    if not folder.is_dir():
        raise BenchError(f"image folder {folder} does not exist")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths: list[Path] = []
    labels: list[int] = []
    for index, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < 2:
            raise BenchError(
                f"class folder {class_dir} holds {len(files)} images (.png/.jpg); "
                f"each class needs at least 2 to have train and test images"
            )
        paths += files
        labels += [index] * len(files)
    if len(class_dirs) < 2:
        raise BenchError(
            f"image folder {folder} has {len(class_dirs)} class sub-folders; "
            f"expected one sub-folder of images per class, at least 2"
        )
    return tuple(d.name for d in class_dirs), paths, labels


def load_folder(
    folder: Path, *, image_size: int, seed: int
) -> tuple[ImageSet, ImageSet, tuple[str, ...]]:
    """(train, test, class names), holding out 20% of each class by a `seed`-fixed draw."""
    classes, paths, labels = _scan(folder)
    workers = min(8, os.cpu_count() or 1)  # Pillow releases the GIL while decoding
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(lambda p: _decode(p, image_size), paths))
    full = ImageSet(torch.from_numpy(np.stack(arrays)), torch.tensor(labels, dtype=torch.int64))
    train_idx, test_idx = stratified_split(full.labels, TEST_FRACTION, seed)
    return full.subset(train_idx), full.subset(test_idx), classes
