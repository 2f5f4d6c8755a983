"""build.static_pools: the published ResNeSt-D pools swapped for exact equivalents that mobile
delegates take, on a fixed input shape; the model itself is untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnest_bench import models
from resnest_bench.harness.export.static_pools import static_pools


def _pools(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]


@pytest.mark.parametrize(("name", "stem"), [("resnest-tiny", "cifar"), ("resnest14d", "imagenet")])
def test_same_outputs_delegate_friendly_pools(name: str, stem: str) -> None:
    torch.manual_seed(0)
    model = models.create_model(name, stem=stem).eval()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.weight.data.uniform_(0.5, 1.5)  # zero-initialised last BNs would hide the blocks
        bn.running_mean.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 32, 32)
    friendly = static_pools(model, x[:1])
    with torch.no_grad():
        torch.testing.assert_close(friendly(x), model(x), atol=1e-5, rtol=0)
    assert all(
        not p.ceil_mode and not any(p.padding if isinstance(p.padding, tuple) else (p.padding,))
        for p in _pools(friendly)
    )
    assert any(p.ceil_mode for p in _pools(model))  # the original keeps the published pools
    assert friendly.state_dict().keys() >= model.state_dict().keys()


def test_a_ragged_pool_keeps_ceil_mode() -> None:
    pool = nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False))
    x = torch.randn(1, 4, 5, 5)  # 5 does not divide by 2: the last window is partial
    kept = static_pools(pool, x)
    assert kept[0].ceil_mode and torch.equal(kept(x), pool(x))
