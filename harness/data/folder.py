"""Users' own images: root/train/<class>/ with root/test/<class>/ (or val/), or root/<class>/
with a held-out fraction of each class drawn by the seed."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from resnest_bench.harness.data.split import stratified_split
from resnest_bench.harness.data.types import ImageSet
from resnest_bench.harness.errors import BenchError

# Images over the limit are refused in _decode with a message; Pillow's warning is redundant.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
HELD_OUT_NAMES = ("test", "val")


WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})  # 16-bit grey (PNG)


def _rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB. 16-bit grey is scaled to 0-255 (x / 257): Pillow's own conversion clips it,
    which turned every 16-bit PNG almost white."""
    if img.mode in WIDE_MODES:
        wide = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint(wide / 257), 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def _too_large(path: Path, limit: int, pixels: str) -> BenchError:
    return BenchError(
        f"{path} has {pixels}, over the {limit:,} Pillow decodes safely (a possible "
        "decompression bomb): shrink or remove it"
    )


def _decode(path: Path, size: int) -> np.ndarray:
    """RGB, centre-cropped to a square and resized (bicubic) to size x size, as CHW uint8.

    Cropping before resizing keeps the aspect ratio: squashing would distort every image.
    An image over Pillow's pixel limit (a decompression bomb) is refused before decoding.
    """
    limit = Image.MAX_IMAGE_PIXELS or 0
    try:
        with Image.open(path) as img:
            if limit and img.width * img.height > limit:
                raise _too_large(path, limit, f"{img.width}x{img.height} pixels")
            square = ImageOps.fit(_rgb(img), (size, size), Image.Resampling.BICUBIC)
    except Image.DecompressionBombError:  # over twice the limit: refused by Image.open itself
        raise _too_large(path, limit, "more pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BenchError(f"{path} cannot be read as an image ({exc}): fix or remove it") from exc
    return np.asarray(square, dtype=np.uint8).transpose(2, 0, 1)


def _class_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BenchError(f"image folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan(folder: Path, minimum: int) -> tuple[tuple[str, ...], list[Path], list[int]]:
    """Class names (sorted sub-folder names) and every image path with its class index."""
    class_dirs = _class_dirs(folder)
    paths: list[Path] = []
    labels: list[int] = []
    for index, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < minimum:
            need = "to have train and test images" if minimum > 1 else "to learn it"
            raise BenchError(
                f"class folder {class_dir} holds {len(files)} images (.png/.jpg); "
                f"each class needs at least {minimum} {need}"
            )
        paths += files
        labels += [index] * len(files)
    if len(class_dirs) < 2:
        raise BenchError(
            f"image folder {folder} has {len(class_dirs)} class sub-folders; "
            f"expected one sub-folder of images per class, at least 2"
        )
    return tuple(d.name for d in class_dirs), paths, labels


def _read(paths: list[Path], labels: list[int], image_size: int) -> ImageSet:
    workers = min(8, os.cpu_count() or 1)  # Pillow releases the GIL while decoding
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(lambda p: _decode(p, image_size), paths))
    return ImageSet(torch.from_numpy(np.stack(arrays)), torch.tensor(labels, dtype=torch.int64))


def split_layout(folder: Path) -> tuple[Path, Path] | None:
    """(train, held-out) sub-folders when `folder` is split already: train/ with test/ or val/."""
    held_out = [folder / name for name in HELD_OUT_NAMES if (folder / name).is_dir()]
    if (folder / "train").is_dir() and held_out:
        return folder / "train", held_out[0]
    return None


@dataclass(frozen=True)
class FolderData:
    """A folder's images as train and held-out sets, and how they were split (for the report)."""

    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    train_split: str
    test_split: str
    held_out_by: str | None = None  # the draw that split a flat folder; None for train/ + test/


def load_folder(folder: Path, *, image_size: int, seed: int, val_fraction: float) -> FolderData:
    """A train/ + test/ (or val/) layout as given; otherwise one sub-folder per class, of which
    `val_fraction` of each class is held out by a `seed`-fixed draw."""
    layout = split_layout(folder)
    if layout is not None:
        train_dir, test_dir = layout
        classes, paths, labels = _scan(train_dir, minimum=1)
        test_classes, test_paths, test_labels = _scan(test_dir, minimum=1)
        if test_classes != classes:
            raise BenchError(
                f"{test_dir} has class folders {list(test_classes)} but {train_dir} has "
                f"{list(classes)}: both need the same class sub-folders"
            )
        return FolderData(
            _read(paths, labels, image_size),
            _read(test_paths, test_labels, image_size),
            classes,
            f"{train_dir} ({len(paths)} images)",
            f"{test_dir} ({len(test_paths)} images, held out)",
        )
    classes, paths, labels = _scan(folder, minimum=2)
    full = _read(paths, labels, image_size)
    train_idx, test_idx = stratified_split(full.labels, val_fraction, seed)
    return FolderData(
        full.subset(train_idx),
        full.subset(test_idx),
        classes,
        f"{1 - val_fraction:.0%} of each class of {folder} ({len(train_idx)} images)",
        f"the other {val_fraction:.0%} of each class, held out by seed {seed} "
        f"({len(test_idx)} images)",
        held_out_by=f"seed {seed}, val_fraction {val_fraction:g}",
    )
