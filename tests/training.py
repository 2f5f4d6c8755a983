"""A few plain SGD steps on a model, for tests that need a model that has learned something."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from resnest_bench.harness.data import Dataset, normalize


def train_steps(
    model: torch.nn.Module, data: Dataset, *, steps: int, batch: int, lr: float, seed: int = 0
) -> torch.nn.Module:
    """`steps` SGD (momentum 0.9) steps on random training batches; returns the model in eval
    mode. One thread: deterministic, and not starved on a busy 2-core host."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        x, y = normalize(data.train.images, data.mean, data.std), data.train.labels
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(steps):
            idx = torch.randint(0, len(x), (batch,), generator=generator)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def trained_on_digits(root: Path, *, size: int = 16, steps: int = 100) -> tuple[Dataset, nn.Module]:
    """resnest-tiny after `steps` SGD steps on scikit-learn's scanned digits (real images,
    written under `root` as an image folder): a model that has learned, for accuracy checks."""
    from resnest_bench import models
    from resnest_bench.harness.data import load_dataset
    from tests.digits import write_digits

    data = load_dataset(
        "folder", root=root, folder=write_digits(root / "images", size), image_size=size, seed=0
    )
    torch.manual_seed(0)
    model = train_steps(models.create_model("resnest-tiny"), data, steps=steps, batch=64, lr=0.05)
    return data, model
