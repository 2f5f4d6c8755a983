"""Generated, learnable images for smoke runs: no download, yet training visibly works.

Each class owns a colour and a sinusoidal grating (its own frequency and orientation); every
image is its class template at a random phase plus pixel noise. A tiny CNN separates the
classes within a few dozen steps, so a broken training loop shows up as chance accuracy.
"""

from __future__ import annotations

import math

import torch

from resnest_bench.harness.data.types import ImageSet

DEFAULT_TRAIN = 2048
DEFAULT_TEST = 512


def _templates(num_classes: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Per-class colour (C, 3), frequency (C,) and orientation (C,) of the grating."""
    hues = 2 * math.pi * (torch.arange(num_classes) / num_classes + torch.rand(1, generator=gen))
    shifts = torch.tensor([0.0, 2 * math.pi / 3, -2 * math.pi / 3])
    colours = torch.cos(hues[:, None] - shifts)  # evenly spaced round the colour wheel
    freqs = 1.0 + torch.arange(num_classes) % 4 + torch.rand(num_classes, generator=gen) * 0.5
    angles = torch.arange(num_classes) * (math.pi / num_classes) * 2.39996  # golden-angle spread
    return colours, freqs, angles


def _render(
    labels: torch.Tensor, size: int, templates: tuple[torch.Tensor, ...], gen: torch.Generator
) -> torch.Tensor:
    colours, freqs, angles = templates
    n = len(labels)
    coords = torch.linspace(0, 2 * math.pi, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    angle, freq = angles[labels].view(n, 1, 1), freqs[labels].view(n, 1, 1)
    phase = torch.rand(n, 1, 1, generator=gen) * 2 * math.pi
    wave = torch.sin(freq * (xx * torch.cos(angle) + yy * torch.sin(angle)) + phase)
    colour = colours[labels].view(n, 3, 1, 1)
    pixels = 128 + 50 * colour + 40 * colour.abs() * wave.unsqueeze(1)
    pixels += torch.randn(n, 3, size, size, generator=gen) * 25
    return pixels.round().clamp(0, 255).to(torch.uint8)


def make_synthetic(
    num_classes: int, train_size: int, test_size: int, image_size: int, seed: int
) -> tuple[ImageSet, ImageSet, tuple[str, ...]]:
    """(train, test, class names), identical for identical arguments."""
    gen = torch.Generator().manual_seed(seed)
    templates = _templates(num_classes, gen)
    splits = []
    for size in (train_size, test_size):
        labels = torch.arange(size) % num_classes  # balanced; the loader shuffles
        splits.append(ImageSet(_render(labels, image_size, templates, gen), labels))
    return splits[0], splits[1], tuple(f"class_{i}" for i in range(num_classes))
