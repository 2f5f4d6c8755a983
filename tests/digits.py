"""Real images for tests, with no download: scikit-learn's 1,797 scanned handwritten digits (8x8,
16 grey levels) written as an image folder of PNGs, one sub-folder per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_digits(root: Path, size: int = 32) -> Path:
    """root/<digit>/<index>.png, upscaled (bicubic) to size x size; returns root."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = Image.fromarray((image * (255 / 16)).astype(np.uint8))
        pixels.resize((size, size), Image.Resampling.BICUBIC).save(folder / f"{index}.png")
    return root
