"""Sensitivity-ranked mixed precision, by hand-made numbers: the ranking, the steps of the
ladder, and a ranking that fails becoming one recorded attempt."""

from __future__ import annotations

import numpy as np
import pytest

from resnest_bench.harness.export.sensitivity import keep_counts, mean_kl, rank_layers, ranked_plans


def test_kl_is_zero_for_equal_outputs_and_matches_a_hand_computed_value():
    reference = np.array([[0.0, 0.0]])
    assert mean_kl(reference, reference) == 0.0
    # p = (1/2, 1/2), q = softmax(ln 3, 0) = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2
    other = np.array([[np.log(3.0), 0.0]])
    assert mean_kl(reference, other) == pytest.approx(0.5 * np.log(2 / 3) + 0.5 * np.log(2))


def test_layers_rank_by_how_much_keeping_each_alone_fp32_helps():
    reference = np.array([[4.0, 0.0, 0.0]] * 3)
    noise = {"a": 0.1, "b": 2.0, "c": 0.5}  # what quantizing each layer adds to the wrong class

    def logits_keeping(kept: tuple[str, ...]) -> np.ndarray:
        wrong = sum(v for layer, v in noise.items() if layer not in kept)
        return reference + np.array([0.0, wrong, 0.0])

    ranking = rank_layers(["a", "b", "c"], logits_keeping, reference)
    assert ranking.layers == ("b", "c", "a")
    assert ranking.gains[0] > ranking.gains[1] > ranking.gains[2] > 0
    assert ranking.all_int8_kl == pytest.approx(mean_kl(reference, logits_keeping(())))


@pytest.mark.parametrize(
    ("layers", "counts"),
    [
        (0, []),
        (1, [1]),
        (2, [1]),
        (8, [1, 2, 3, 4]),
        (26, [1, 2, 3, 4, 6, 9, 13]),
        (70, [1, 2, 3, 4, 6, 9, 14, 21, 32, 35]),
    ],
)
def test_the_ladder_takes_fine_steps_first_and_stops_at_half_the_layers(layers, counts):
    assert keep_counts(layers) == counts


def test_plans_keep_the_top_layers_and_a_failed_ranking_is_one_error_plan():
    from resnest_bench.harness.export.sensitivity import Ranking

    ranking = Ranking(("x", "y", "z", "w"), (3.0, 2.0, 1.0, 0.0), 5.0)
    assert list(ranked_plans("u8s8", lambda: ranking)) == [
        ("u8s8+1-most-sensitive-fp32", ("x",)),
        ("u8s8+2-most-sensitive-fp32", ("x", "y")),
    ]

    def broken():
        raise RuntimeError("quantizer refused")

    ((variant, error),) = list(ranked_plans("nncf", broken))
    assert variant == "nncf+sensitivity-ranking" and str(error) == "quantizer refused"
