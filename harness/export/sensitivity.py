"""Sensitivity-ranked mixed precision: which layers to keep fp32 when all-int8 loses accuracy.

Each weighted layer (conv / linear) is ranked by how much keeping it, alone, in fp32 brings the
int8 model's outputs back towards fp32's: the mean KL divergence of softmax outputs on training
images (never the held-out ones the gate judges on) for all-int8, minus that with the one layer
excluded. Every runtime ranks in its own graph with its own exclusion mechanism (ONNX Runtime's
nodes_to_exclude, NNCF's ignored_scope, XNNPACKQuantizer's filter, ai-edge-quantizer's per-op
NO_QUANTIZE), building quick variants calibrated on fewer images. The gate then keeps the top
1, 2, 3, 4, 6, 9, ... layers fp32 and stops at the first variant within the limit: the fewest
most sensitive layers, instead of a fixed list of layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

RANKING_IMAGES = 128  # training images the outputs are compared on
RANKING_CALIBRATION = 64  # training images each quick variant is calibrated on
MAX_KEPT_SHARE = 0.5  # never keep more than half the layers fp32: that is no longer int8


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def mean_kl(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean KL(softmax(reference) || softmax(other)) over the batch: how far other's class
    probabilities are from the reference's (0 when equal)."""
    p, q = softmax(reference.astype(np.float64)), softmax(other.astype(np.float64))
    return float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), axis=1)))


@dataclass(frozen=True)
class Ranking:
    """Layers, most sensitive first, each with its KL gain (how much keeping it fp32 alone
    lowers the KL divergence from fp32)."""

    layers: tuple[str, ...]
    gains: tuple[float, ...]
    all_int8_kl: float


def rank_layers(
    layers: Sequence[str],
    logits_keeping: Callable[[tuple[str, ...]], np.ndarray],
    reference: np.ndarray,
) -> Ranking:
    """Rank `layers` by leave-one-out gain; `logits_keeping(kept)` gives the ranking images'
    logits of a quick int8 variant keeping `kept` fp32, `reference` the fp32 logits."""
    base = mean_kl(reference, logits_keeping(()))
    gains = {layer: base - mean_kl(reference, logits_keeping((layer,))) for layer in layers}
    order = sorted(layers, key=lambda layer: -gains[layer])  # stable: ties keep graph order
    return Ranking(tuple(order), tuple(gains[layer] for layer in order), base)


def keep_counts(layers: int) -> list[int]:
    """How many of the most sensitive layers each ranked variant keeps fp32: 1, 2, 3, 4, 6,
    9, 13, ... up to MAX_KEPT_SHARE of the layers (fine steps first: the fewest that hold)."""
    cap = max(1, int(layers * MAX_KEPT_SHARE)) if layers else 0
    counts, k = [], 1
    while k <= cap:
        counts.append(k)
        k = k + 1 if k < 4 else (k * 3 + 1) // 2
    if counts and counts[-1] != cap:
        counts.append(cap)
    return counts


def ranked_plans(
    name: str, ranking: Callable[[], Ranking]
) -> Iterator[tuple[str, tuple[str, ...] | Exception]]:
    """(variant, layers kept fp32) for the gate, ranked lazily: the ranking runs only when the
    gate asks past the all-int8 variants. A ranking that fails yields its error once, which
    the gate records as a failed attempt."""
    try:
        ranked = ranking()
    except Exception as exc:  # a converter refusing a quick variant: recorded, not fatal
        yield f"{name}+sensitivity-ranking", exc
        return
    for k in keep_counts(len(ranked.layers)):
        yield f"{name}+{k}-most-sensitive-fp32", ranked.layers[:k]


def rank_in_graph(
    layers: Sequence[str],
    quick: Callable[[tuple[str, ...]], Callable[[np.ndarray], np.ndarray]],
    fp32: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
) -> Ranking:
    """rank_layers for one converter: `quick(kept)` builds a quick int8 variant keeping `kept`
    fp32 and returns it as batch -> logits; `fp32` is the converter's own fp32 model; both
    run on `images` (the ranking images) in batches of 64."""

    def logits(run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return np.concatenate([run(images[i : i + 64]) for i in range(0, len(images), 64)])

    return rank_layers(layers, lambda kept: logits(quick(kept)), logits(fp32))
