"""Where a model's first weights come from: a seeded fresh init, or a transferred body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from resnest_bench import models
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.results.training import WeightsInit
from resnest_bench.models.weights import detect_source, load_state, read_state_dict


def create_seeded_model(name: str, *, seed: int, **overrides: Any) -> models.ResNeSt:
    """models.create_model with its random init fixed by `seed`, leaving the global RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return models.create_model(name, **overrides)
        except models.ModelError as exc:
            raise BenchError(str(exc)) from None


def load_transfer_weights(
    model: models.ResNeSt, path: str | Path, *, num_classes: int, seed: int
) -> WeightsInit:
    """Load a body from our training checkpoint or official/timm ImageNet weights, then give
    the model a fresh `num_classes` head (seeded by `seed`).

    The head never transfers. The stem is skipped too (keeping the model's own fresh init) when
    its kind differs: an ImageNet deep stem's tensors have no place in a CIFAR stem. Every other
    tensor must fit exactly.
    """
    try:
        state = read_state_dict(path)
        source = detect_source(state)
        deep_stem = any(k.startswith(("stem.3.", "conv1.3.")) for k in state)
        skip = ("fc.",) if (model.config.stem == "imagenet") == deep_stem else ("fc.", "stem.")
        load_state(model, state, path, source=source, skip=skip)
    except models.ModelError as exc:
        raise BenchError(str(exc)) from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.reset_classifier(num_classes)
    return WeightsInit(path=str(path), source=source, skipped=list(skip))
