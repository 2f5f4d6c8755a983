"""The ResNeSt family: published sizes, both blocks and stems, split attention, weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnest_bench import models
from resnest_bench.models.layers import SplitAttnConv2d
from resnest_bench.models.profile import count_macs, count_params
from resnest_bench.models.weights import load_pretrained, ours_to_external

PUBLISHED_PARAMS = {
    "resnest14d": 10_611_688,
    "resnest26d": 17_069_448,
    "resnest50d": 27_483_240,
    "resnest101e": 48_275_016,
    "resnest200e": 70_201_544,
    "resnest269e": 110_929_480,
    "resnet50": 25_576_264,  # timm's resnet50d: the same network without split attention
}


@pytest.mark.parametrize(("name", "params"), PUBLISHED_PARAMS.items())
def test_param_counts_match_published(name: str, params: int) -> None:
    with torch.device("meta"):  # construct only: never allocate or run the big ones
        model = models.create_model(name, num_classes=1000, stem="imagenet")
    assert count_params(model) == params


def test_registry_lists_every_named_config() -> None:
    expected = {*PUBLISHED_PARAMS, "resnest50d-basic", "resnest-tiny", "resnest-tiny-basic"}
    named = {name for name in models.list_models() if not name.startswith("resnest-mobile-")}
    assert named == expected  # the mobile configs: tests/test_sweep_configs.py
    with pytest.raises(models.ModelError, match="unknown model 'resnest51'"):
        models.create_model("resnest51")


def test_macs_match_published_and_cifar_anchor() -> None:
    with torch.device("meta"):
        imagenet = models.create_model("resnest50d")
        cifar = models.create_model("resnest50d", stem="cifar", num_classes=10)
    assert count_macs(imagenet, 224) == pytest.approx(5.4e9, rel=0.02)
    assert cifar.config.input_size == 32
    assert count_macs(cifar, 32) == pytest.approx(1.67e9, rel=0.03)


@pytest.mark.parametrize("name", ["resnest-tiny", "resnest-tiny-basic"])
@pytest.mark.parametrize(("stem", "size"), [("cifar", 32), ("imagenet", 64)])
def test_forward_backward_both_blocks_and_stems(name: str, stem: str, size: int) -> None:
    model = models.create_model(name, stem=stem, num_classes=7)
    x = torch.randn(2, 3, size, size)
    logits = model(x)
    assert logits.shape == (2, 7)
    F.cross_entropy(logits, torch.tensor([1, 3])).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("radix", "cardinality"), [(0, 1), (1, 1), (2, 1), (2, 2), (4, 2)])
def test_radix_and_cardinality_overrides(radix: int, cardinality: int) -> None:
    model = models.create_model("resnest-tiny", radix=radix, cardinality=cardinality).eval()
    assert model.config.radix == radix and model.config.cardinality == cardinality
    has_split_attention = any(isinstance(m, SplitAttnConv2d) for m in model.modules())
    assert has_split_attention == (radix > 0)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"radix": -1}, "radix must be >= 0"),
        ({"cardinality": 0}, "cardinality must be >= 1"),
        ({"num_classes": 0}, "num_classes must be >= 1"),
        ({"stem": "mobile"}, "stem must be one of"),
        ({"radix": 3}, "cannot form radix 3 x cardinality 1 groups"),
    ],
)
def test_bad_override_is_a_clear_error(bad: dict, message: str) -> None:
    with pytest.raises(models.ModelError, match=message):
        models.create_model("resnest-tiny", **bad)


def _reference_split_attention(layer: SplitAttnConv2d, x: torch.Tensor) -> torch.Tensor:
    """The paper's equations, cardinal group by group, with explicit loops."""
    r, k, c = layer.radix, layer.cardinality, layer.out_chs
    u = layer.act0(layer.bn0(layer.conv(x)))  # channels ordered (split, group, channel)
    per = c // k
    split = [[u[:, (s * k + g) * per : (s * k + g + 1) * per] for g in range(k)] for s in range(r)]
    gap = torch.cat([sum(split[s][g] for s in range(r)) for g in range(k)], 1).mean((2, 3))
    logits = layer.fc2(layer.act1(layer.bn1(layer.fc1(gap[:, :, None, None])))).flatten(1)
    outs = []
    for g in range(k):
        group_logits = logits[:, g * r * per : (g + 1) * r * per].reshape(-1, r, per)
        weights = torch.sigmoid(group_logits) if r == 1 else torch.softmax(group_logits, dim=1)
        outs.append(sum(weights[:, s, :, None, None] * split[s][g] for s in range(r)))
    return torch.cat(outs, 1)


@pytest.mark.parametrize(("radix", "cardinality"), [(1, 1), (2, 1), (2, 4), (3, 2), (4, 2)])
def test_split_attention_matches_paper_equations(radix: int, cardinality: int) -> None:
    torch.manual_seed(0)
    layer = SplitAttnConv2d(24, 24, radix=radix, cardinality=cardinality).eval()
    for bn in (layer.bn0, layer.bn1):  # non-trivial statistics so ordering mistakes show
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 24, 8, 8)
    with torch.no_grad():  # within 1e-5: the delegate-friendly form computes the same function
        torch.testing.assert_close(
            layer(x), _reference_split_attention(layer, x), atol=1e-5, rtol=0
        )


def _save(tmp_path, state: dict, name: str = "w.pth"):
    path = tmp_path / name
    torch.save(state, path)
    return path


@pytest.mark.parametrize("source", ["official", "timm"])
@pytest.mark.parametrize("radix", [2, 0])  # radix 0: timm's ResNet-D names (conv2/bn2)
def test_external_weights_round_trip(tmp_path, source: str, radix: int) -> None:
    def build() -> models.ResNeSt:  # external checkpoints are ImageNet-stem networks
        return models.create_model("resnest-tiny", stem="imagenet", num_classes=5, radix=radix)

    donor = build()
    external = {ours_to_external(k): v for k, v in donor.state_dict().items()}
    assert None not in external and any(k.startswith("layer1.0.") for k in external)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in external.items()}}
    receiver = build()
    load_pretrained(receiver, _save(tmp_path, wrapped), source=source)
    for key, value in donor.state_dict().items():
        assert torch.equal(receiver.state_dict()[key], value), key


def test_our_checkpoint_and_head_skip_for_transfer(tmp_path) -> None:
    donor = models.create_model("resnest-tiny", num_classes=10)
    receiver = models.create_model("resnest-tiny", num_classes=100)
    path = _save(tmp_path, {"model": donor.state_dict(), "epoch": 3})
    skipped = load_pretrained(receiver, path, skip=("fc.",))
    assert skipped == ["fc.weight", "fc.bias"]
    assert torch.equal(receiver.stem[0].weight, donor.stem[0].weight)
    with pytest.raises(models.ModelError, match=r"shape mismatch \(2\): fc.weight"):
        load_pretrained(receiver, path)


def test_bad_checkpoints_are_clear_errors(tmp_path) -> None:
    model = models.create_model("resnest-tiny")
    with pytest.raises(models.ModelError, match="weights file not found"):
        load_pretrained(model, tmp_path / "nope.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02 this is not a checkpoint")
    with pytest.raises(models.ModelError, match="cannot read weights file"):
        load_pretrained(model, corrupt)
    state = model.state_dict()
    del state["fc.bias"]
    state["stages.9.0.extra"] = torch.zeros(1)
    with pytest.raises(models.ModelError, match=r"missing \(1\): fc.bias; unexpected \(1\)"):
        load_pretrained(model, _save(tmp_path, state))
    with pytest.raises(models.ModelError, match="no known key format"):
        load_pretrained(model, _save(tmp_path, {"foo.weight": torch.zeros(1)}, "foreign.pth"))
