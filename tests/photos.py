"""Real natural photos for tests, with no download: 32x32 patches cut from ten of the photographs
scikit-image ships inside its wheel, one class per photograph. Training patches come from the top
70% of each photo and held-out patches from the bottom 30%, so no test pixel was trained on.
Written as a class folder, or as a CIFAR-10 binary archive (the official file layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Photographs, not drawings or synthetic test charts; each is its own class.
PHOTOS = (
    "astronaut", "brick", "chelsea", "coffee", "coins",
    "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "rocket",
)  # fmt: skip
PATCH = 32
TRAIN_ROWS = 0.7  # the top 70% of each photo's rows give training patches; the rest, test


def _rgb(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def _patches(image: np.ndarray, rows: tuple[int, int], count: int, rng) -> np.ndarray:
    """`count` PATCH x PATCH crops whose rows lie in [rows[0], rows[1]); N, H, W, 3."""
    top = rng.integers(rows[0], rows[1] - PATCH, count)
    left = rng.integers(0, image.shape[1] - PATCH, count)
    return np.stack([image[t : t + PATCH, x : x + PATCH] for t, x in zip(top, left, strict=True)])


def photo_patches(
    train_per_class: int = 150, test_per_class: int = 40, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((train images N,H,W,3, labels), (test images, labels)), uint8, classes in PHOTOS order."""
    rng = np.random.default_rng(seed)
    splits: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(PHOTOS):
        image = _rgb(name)
        cut = int(image.shape[0] * TRAIN_ROWS)
        for split, rows, count in (
            ("train", (0, cut), train_per_class),
            ("test", (cut, image.shape[0]), test_per_class),
        ):
            splits[split][0].append(_patches(image, rows, count, rng))
            splits[split][1].append(np.full(count, label))
    train, test = ((np.concatenate(x), np.concatenate(y)) for x, y in splits.values())
    return train, test


def write_photo_folder(root: Path, **sizes: int) -> Path:
    """root/{train,test}/<photo>/<index>.png; returns root."""
    for split, (images, labels) in zip(("train", "test"), photo_patches(**sizes), strict=True):
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / PHOTOS[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{index}.png")
    return root


def photo_cifar_archive(tmp_path: Path, **sizes: int):
    """The same patches as a cifar-10-binary.tar.gz (training patches over data_batch_1..5,
    held-out ones in test_batch); its ArchiveSource, for load_dataset("cifar10", archive=)."""
    from tests.cifar_files import pack, records

    (train_x, train_y), (test_x, test_y) = photo_patches(**sizes)

    def planes(images: np.ndarray) -> np.ndarray:  # N,H,W,3 -> N, R plane + G + B, row-major
        return images.transpose(0, 3, 1, 2).reshape(len(images), -1)

    order = np.random.default_rng(1).permutation(len(train_x))  # batches mix the classes
    files = {
        f"data_batch_{i + 1}.bin": records([train_y[part]], planes(train_x[part]))
        for i, part in enumerate(np.array_split(order, 5))
    }
    files["test_batch.bin"] = records([test_y], planes(test_x))
    files["batches.meta.txt"] = "\n".join(PHOTOS).encode() + b"\n\n"
    return pack(tmp_path, "cifar-10-batches-bin", files, "cifar-10-binary.tar.gz")
