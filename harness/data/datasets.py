"""Read a named data set (CIFAR-10/100, a folder of images, or synthetic) into a `Dataset`,
with the suite's subsets and a held-out split where the source has none."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from resnest_bench.harness.choices import DatasetName
from resnest_bench.harness.data.cifar import CIFAR_FORMATS, load_cifar
from resnest_bench.harness.data.download import ArchiveSource, Progress
from resnest_bench.harness.data.folder import load_folder
from resnest_bench.harness.data.split import stratified_subset
from resnest_bench.harness.data.synthetic import DEFAULT_TEST, DEFAULT_TRAIN, make_synthetic
from resnest_bench.harness.data.types import Dataset, channel_stats
from resnest_bench.harness.errors import BenchError

DATASETS: tuple[str, ...] = get_args(DatasetName)


def load_dataset(
    name: str,
    *,
    root: Path,
    download: bool = True,
    folder: Path | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    image_size: int = 32,
    seed: int = 0,
    val_fraction: float = 0.2,
    num_classes: int | None = None,
    archive: ArchiveSource | None = None,
    progress: Progress | None = None,
) -> Dataset:
    """Load (downloading CIFAR into `root` once if allowed) and subset a dataset.

    Subsets hold at most train_subset/test_subset images, class-balanced and fixed by
    `seed`. mean/std come from the full train split, so a --quick run normalises exactly
    like a full one. `num_classes` applies to "synthetic" only (default 10); `archive`
    replaces the official CIFAR URL/md5 (tests serve local archives); `progress` receives
    (bytes done, bytes total) while downloading. A folder without train/ and test/ (or val/)
    sub-folders holds out `val_fraction` of each class.
    """
    if name not in DATASETS:
        raise BenchError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if image_size < 8:
        raise BenchError(f"image size must be at least 8 pixels, got {image_size}")
    for what, size in (("train_subset", train_subset), ("test_subset", test_subset)):
        if size is not None and size <= 0:
            raise BenchError(f"{what} must be a positive number of images, got {size}")
    if num_classes is not None and name != "synthetic":
        raise BenchError(
            f"{name!r} has a fixed number of classes; only 'synthetic' takes num_classes"
        )
    held_out_by = None
    if name in CIFAR_FORMATS:
        if image_size != 32:
            raise BenchError(f"{name} images are 32x32; image size {image_size} is not supported")
        train, test, classes, source = load_cifar(
            name, Path(root), download=download, source=archive, progress=progress
        )
        splits = f"the {name} training set", f"the {name} test set (held out)"
    elif name == "folder":
        if folder is None:
            raise BenchError("dataset 'folder' needs a folder of class sub-folders of images")
        loaded = load_folder(
            Path(folder), image_size=image_size, seed=seed, val_fraction=val_fraction
        )
        train, test, classes = loaded.train, loaded.test, loaded.classes
        splits = loaded.train_split, loaded.test_split
        held_out_by = loaded.held_out_by
        source = str(Path(folder).resolve())
    else:
        classes_n = 10 if num_classes is None else num_classes
        if classes_n < 2:
            raise BenchError(f"synthetic data needs at least 2 classes, got {classes_n}")
        train, test, classes = make_synthetic(
            classes_n, train_subset or DEFAULT_TRAIN, test_subset or DEFAULT_TEST, image_size, seed
        )
        source = f"synthetic(seed={seed})"
        splits = "generated training images", "generated test images (held out)"
    mean, std = channel_stats(train.images)
    return Dataset(
        name=name,
        train=stratified_subset(train, train_subset, seed),
        test=stratified_subset(test, test_subset, seed),
        classes=classes,
        mean=mean,
        std=std,
        synthetic=name == "synthetic",
        source=source,
        train_split=splits[0],
        test_split=splits[1],
        held_out_by=held_out_by,
    )
