"""The dataset containers every other part of the harness consumes.

Images stay uint8 NCHW until the last moment: a quarter of the memory of float32, so whole
CIFAR sets fit on any GPU, and `normalize` is the single place pixels become model input.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import torch

from resnest_bench.harness.errors import BenchError

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class ImageSet:
    """One split: uint8 images (N, 3, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 (N, 3, H, W), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be int64 ({len(self.images)},), got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> ImageSet:
        """The samples at `indices` (a copy, so the full set can be freed)."""
        return ImageSet(self.images[indices].contiguous(), self.labels[indices].contiguous())


@dataclass(frozen=True)
class Preprocessing:
    """What turns a file's pixels into this model's input: it travels in every checkpoint and
    deployment file, so deploying on another folder never recomputes it from that folder."""

    mean: Triple
    std: Triple
    image_size: int
    classes: tuple[str, ...]
    # Where the model was trained and, for a flat folder, how its held-out images were drawn:
    # evaluating on the same folder with another draw would score training images.
    source: str | None = None
    held_out_by: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "image_size": self.image_size,
            "classes": list(self.classes),
            "source": self.source,
            "held_out_by": self.held_out_by,
        }

    @classmethod
    def from_dict(cls, raw: object) -> Preprocessing:
        """ValueError when `raw` is not what to_dict wrote."""
        if not isinstance(raw, dict):
            raise ValueError(f"expected a mapping, got {type(raw).__name__}")
        try:
            mean, std = tuple(map(float, raw["mean"])), tuple(map(float, raw["std"]))
            size, classes = int(raw["image_size"]), tuple(map(str, raw["classes"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"missing or malformed {exc}") from None
        if len(mean) != 3 or len(std) != 3:
            raise ValueError("mean and std need 3 channels each")
        # std <= 0 divided by zero or silently flipped every input's sign; NaN poisoned all
        if not all(math.isfinite(v) for v in mean + std) or min(std) <= 0 or size <= 0:
            raise ValueError(
                f"mean {list(mean)}, std {list(std)}, image size {size}: the means must be "
                "finite, the stds finite and > 0, the size > 0"
            )
        # absent in files written before they were kept
        source, held_out_by = raw.get("source"), raw.get("held_out_by")
        return cls(
            mean,  # type: ignore[arg-type]
            std,  # type: ignore[arg-type]
            size,
            classes,
            None if source is None else str(source),
            None if held_out_by is None else str(held_out_by),
        )


@dataclass(frozen=True)
class Dataset:
    """A train/test pair plus what is needed to feed a model: class names and normalisation.

    `synthetic` marks generated data whose accuracy must never be presented as a real result;
    `source` says where the pixels came from (URL, folder, or generator) for the report;
    `train_split` and `test_split` say which of them were training and which held-out images.
    """

    name: str
    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    mean: Triple
    std: Triple
    synthetic: bool
    source: str
    train_split: str = "the training split"
    test_split: str = "the test split"
    held_out_by: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            self.mean, self.std, self.image_size, self.classes, self.source, self.held_out_by
        )

    def preprocessed_as(self, pre: Preprocessing, origin: str) -> Dataset:
        """This data fed as the model from `origin` was trained: its mean/std, after checking
        that its image size and classes are the model's (else the scores mean nothing)."""
        if pre.image_size != self.image_size:
            raise BenchError(
                f"{origin} was trained on {pre.image_size}x{pre.image_size} images but "
                f"{self.source} gives {self.image_size}x{self.image_size}"
            )
        if pre.classes != self.classes:
            shown = ", ".join(pre.classes[:5]) + (" ..." if len(pre.classes) > 5 else "")
            here = ", ".join(self.classes[:5]) + (" ..." if len(self.classes) > 5 else "")
            raise BenchError(
                f"{origin} was trained on classes [{shown}] but {self.source} holds "
                f"[{here}]: use a folder with the same class sub-folders"
            )
        if pre.source == self.source and pre.held_out_by != self.held_out_by:
            raise BenchError(
                f"{origin} held out images of {self.source} by {pre.held_out_by}, but this run "
                f"draws them by {self.held_out_by}: some would be training images; pass the "
                "same --seed and --val-fraction"
            )
        return dataclasses.replace(self, mean=pre.mean, std=pre.std)


def channel_stats(images: torch.Tensor) -> tuple[Triple, Triple]:
    """Exact per-channel mean/std of uint8 images in [0, 1] units, via 256-bin histograms.

    Histograms avoid materialising a float copy of the set (600 MB for CIFAR train).
    """
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for channel in range(3):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * (values - mean) ** 2).sum() / total
        means.append(float(mean))
        stds.append(max(float(var.sqrt()), 1e-3))  # a flat channel must not divide by zero
    return (means[0], means[1], means[2]), (stds[0], stds[1], stds[2])


def normalize(images: torch.Tensor, mean: Triple, std: Triple) -> torch.Tensor:
    """uint8 NCHW -> float32 (x/255 - mean) / std on the images' device.

    THE one preprocessing: training, evaluation, export checks, int8 calibration and
    inference all call this, so no two paths can disagree by a rounding or an off-by-255.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise BenchError(
            f"normalize expects uint8 (N, 3, H, W) images, got {images.dtype} {tuple(images.shape)}"
        )
    # One multiply-add in place: x * 1/(255 std) - mean/std, the same map in fewer passes.
    scale, shift = _affine(tuple(mean), tuple(std), images.device)
    return images.to(torch.float32).mul_(scale).add_(shift)


@functools.lru_cache(maxsize=16)
def _affine(mean: Triple, std: Triple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """normalize's (1, 3, 1, 1) scale and shift, built once per device: torch.tensor of Python
    numbers is a blocking host->device copy, once per batch on a GPU otherwise."""
    with torch.inference_mode(False):  # usable outside inference_mode too
        scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32, device=device)
        shift = torch.tensor(
            [-m / s for m, s in zip(mean, std, strict=True)], dtype=torch.float32, device=device
        )
    return scale.view(1, 3, 1, 1), shift.view(1, 3, 1, 1)
