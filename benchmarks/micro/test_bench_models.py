"""Micro-benchmarks of the model family (pytest-benchmark); speed targets live here, not in tests.

    python -m pytest benchmarks/micro --benchmark-enable --benchmark-columns=median,iqr,rounds

The timm comparison runs only where timm imports (it needs torchvision): it loads timm's
resnest50d weights into ours through the official/timm key mapping, so both compute the same
function, and times each side in the same process.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnest_bench import models
from resnest_bench.models.weights import load_pretrained


def _inference(model: torch.nn.Module, x: torch.Tensor):
    model.eval()

    def run() -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    return run


def _train_step(model: torch.nn.Module, x: torch.Tensor):
    model.train()
    y = torch.zeros(x.shape[0], dtype=torch.long)

    def run() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    return run


@pytest.mark.parametrize("block", ["resnest50d", "resnest50d-basic"])
def test_resnest50_cifar_stem_batch1(benchmark, block: str) -> None:
    model = models.create_model(block, stem="cifar", num_classes=10)
    benchmark(_inference(model, torch.randn(1, 3, 32, 32)))


@pytest.mark.parametrize("block", ["resnest50d", "resnest50d-basic"])
def test_resnest50_imagenet_stem_train_step_b32(benchmark, block: str) -> None:
    model = models.create_model(block, num_classes=10)
    benchmark(_train_step(model, torch.randn(32, 3, 32, 32)))


@pytest.fixture(scope="module")
def timm_pair(tmp_path_factory):
    resnest = pytest.importorskip("timm.models.resnest")
    reference = resnest.resnest50d().eval()
    path = tmp_path_factory.mktemp("w") / "timm_resnest50d.pth"
    torch.save(reference.state_dict(), path)
    ours = models.create_model("resnest50d").eval()
    load_pretrained(ours, path, source="timm")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))
    return {"ours": ours, "timm": reference}


@pytest.mark.parametrize("side", ["ours", "timm"])
def test_eager_vs_timm_batch16_32px(benchmark, timm_pair, side: str) -> None:
    benchmark.group = "eager vs timm, resnest50d b16 32px"
    benchmark(_inference(timm_pair[side], torch.randn(16, 3, 32, 32)))
