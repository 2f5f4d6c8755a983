"""The training-time model (harness.gpu.estimate) against figures it was not computed from: the seed
study's measured epochs, the published MACs and the ResNeSt-50 layer count from the paper."""

from __future__ import annotations

import pytest

from resnest_bench.harness.gpu import catalog as gpus
from resnest_bench.harness.gpu import estimate

IMAGENET_STEM = (("stem", "imagenet"),)


def seed_epoch_s(gpu: str) -> float:
    """The model's fp32 eager epoch of ResNeSt-50 (bottleneck, ImageNet stem, CIFAR-10)."""
    spec = gpus.find_gpu(gpu)
    work = estimate.step_work("resnest50d", 10, 128, IMAGENET_STEM)
    cost = estimate.step_cost(work, spec.peak_flops["fp32"], spec.memory_gbps, "fp32", "eager")
    return cost.times(estimate.steps_per_epoch(50_000, 128)).total


@pytest.mark.parametrize(("gpu", "seed_s"), [("P100", 31.0), ("V100", 22.0)])
def test_the_model_reproduces_the_seed_epochs(gpu, seed_s):
    """Seed study, sec. 3.3: 31 s (P100) and 22 s (V100) per CIFAR-10 epoch, bottleneck block."""
    assert seed_epoch_s(gpu) == pytest.approx(seed_s, rel=0.1)


def test_kernels_and_flops_are_counted_from_the_model():
    import torch

    from resnest_bench.models import create_model
    from resnest_bench.models.profile import count_train_step

    with torch.device("meta"):
        model = create_model("resnest50d")
    work = count_train_step(model, 224, 2)  # batch norm in training needs 2 images
    # ResNeSt-50d: a deep stem of 3 convs, 16 blocks of 5 (1x1 reduce, 3x3 split, attention
    # fc1 and fc2, 1x1 expand), 4 shortcut convs = 87; each runs forward and backward, and the
    # classifier adds its addmm and two backward mms.
    assert work.dense_kernels == 2 * 87 + 3
    # forward + backward is about 3x the forward's 2 x 5.4 GMACs (the published ResNeSt-50d
    # figure at 224 px) per image
    per_image = work.flops / 2
    assert 3 * 2 * 5.4e9 <= per_image <= 1.25 * 3 * 2 * 5.4e9
    assert work.kernels > 5 * work.dense_kernels  # eager: pointwise and norm ops dominate


def test_what_bounds_a_step_moves_with_execution():
    """Eager ResNeSt-50 (ImageNet stem) on an H100 in bf16 is launch-bound; CUDA graphs cut the
    launch term by 10 per kernel and fusion cuts the kernels, so something else bounds it."""
    h100 = gpus.find_gpu("H100")
    work = estimate.step_work("resnest50d", 10, 128, IMAGENET_STEM)
    peak = h100.peak_flops["bf16"]
    eager = estimate.step_cost(work, peak, h100.memory_gbps, "bf16", "eager")
    graphs = estimate.step_cost(work, peak, h100.memory_gbps, "bf16", "cuda graphs")
    assert eager.bound == "launch" and graphs.bound != "launch"
    assert graphs.launch == pytest.approx(2 * work.dense_kernels * 1e-6)
    assert graphs.compute == pytest.approx(eager.compute)


def test_no_estimate_without_a_peak_or_a_bandwidth():
    work = estimate.step_work("resnest50d", 10, 128, IMAGENET_STEM)
    assert estimate.step_cost(work, None, 3350, "bf16", "eager") is None
    assert estimate.step_cost(work, 989e12, 0, "bf16", "eager") is None
