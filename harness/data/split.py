"""Deterministic, class-balanced selection: --quick subsets and train/test splits."""

from __future__ import annotations

import torch

from resnest_bench.harness.data.types import ImageSet


def _rank_within_class(labels: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """For samples visited in `order`, each one's position among those of its own class."""
    ordered = labels[order]
    by_class = torch.sort(ordered, stable=True).indices
    counts = torch.bincount(ordered)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[by_class] = torch.arange(len(order)) - starts[ordered[by_class]]
    return rank


def balanced_order(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Every index, classes taking turns: any prefix of it is as class-balanced as it can be.

    A random permutation (from `seed`) picks which samples of each class come first; sorting
    by within-class rank then deals one per class per round.
    """
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=gen)
    rank = _rank_within_class(labels, order)
    return order[torch.sort(rank, stable=True).indices]


def stratified_subset(imageset: ImageSet, size: int | None, seed: int) -> ImageSet:
    """At most `size` samples (in their original order), classes taking turns (balanced_order),
    so a small subset keeps the class balance. `size` above the set size keeps all."""
    if size is None or size >= len(imageset):
        return imageset
    chosen = balanced_order(imageset.labels, seed)[:size]
    return imageset.subset(torch.sort(chosen).values)


def stratified_split(
    labels: torch.Tensor, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train/test indices holding out round(fraction * n) (at least 1) of every class."""
    gen = torch.Generator().manual_seed(seed)
    train, test = [], []
    for cls in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        n_test = max(1, round(test_fraction * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(test)).values
