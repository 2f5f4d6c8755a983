"""The ResNeSt family: split-attention bottleneck and basic blocks, two stems, named configs.

Paper: Zhang et al., "ResNeSt: Split-Attention Networks", https://arxiv.org/abs/2004.08955
Basic block: Fu and Ge, "Optimization and Deployment Analysis of ResNeSt" (seed study, sec. 3.2.2).
All configs are "-D" style networks (deep stem, average-pool shortcut, avd striding) as published.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from resnest_bench.models.layers import SplitAttnConv2d, conv_bn_act
from resnest_bench.models.registry import ModelError, register

BlockKind = Literal["bottleneck", "basic"]
StemKind = Literal["imagenet", "cifar"]
STEMS: tuple[str, ...] = ("imagenet", "cifar")
BLOCKS: tuple[str, ...] = ("bottleneck", "basic")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes a network; a named config plus the user's overrides."""

    name: str
    block: BlockKind
    layers: tuple[int, int, int, int]
    stem: StemKind = "imagenet"
    stem_width: int = 32  # deep stem: 3 -> w -> w -> 2w channels; cifar stem: 3 -> 2w
    base_planes: int = 64  # planes of stage 1, doubled at each later stage
    radix: int = 2  # 0: plain ResNet conv; 1: sigmoid-gated; >= 2: softmax over splits
    cardinality: int = 1
    bottleneck_width: int = 64
    avd: bool = True  # stride by a 3x3 average pool after the 3x3 conv instead of in it
    avg_down: bool = True  # stride the shortcut by average pooling before its 1x1 conv
    num_classes: int = 1000
    input_size: int = 224

    def __post_init__(self) -> None:
        problems = []
        if self.block not in BLOCKS:
            problems.append(f"block must be one of {BLOCKS}, got {self.block!r}")
        if self.stem not in STEMS:
            problems.append(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.radix < 0:
            problems.append(f"radix must be >= 0, got {self.radix}")
        if self.cardinality < 1:
            problems.append(f"cardinality must be >= 1, got {self.cardinality}")
        if self.num_classes < 1:
            problems.append(f"num_classes must be >= 1, got {self.num_classes}")
        if len(self.layers) != 4 or min(self.layers) < 1:
            problems.append(f"layers must be four counts >= 1, got {self.layers}")
        if problems:
            raise ModelError(f"{self.name}: " + "; ".join(problems))

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def feature_channels(self) -> int:
        return self.base_planes * 8 * self.expansion

    def with_overrides(self, **overrides: object) -> ModelConfig:
        """Apply non-None overrides; the cifar stem implies 32x32 inputs unless one is given."""
        given = {key: value for key, value in overrides.items() if value is not None}
        if given.get("stem") == "cifar" and "input_size" not in given:
            given["input_size"] = 32
        return replace(self, **given)


def _shortcut(in_chs: int, out_chs: int, stride: int, avg_down: bool) -> nn.Module:
    """Identity, or a projection that downsamples by average pooling (-D) or a strided conv."""
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    if avg_down:
        pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
        layers = [pool if stride > 1 else nn.Identity(), nn.Conv2d(in_chs, out_chs, 1, bias=False)]
    else:
        layers = [nn.Identity(), nn.Conv2d(in_chs, out_chs, 1, stride, bias=False)]
    return nn.Sequential(*layers, nn.BatchNorm2d(out_chs))


def _spatial_conv(in_chs: int, out_chs: int, stride: int, cfg: ModelConfig) -> nn.Module:
    """The block's 3x3 conv: split attention for radix >= 1, a plain conv-BN-ReLU for radix 0."""
    if cfg.radix == 0:
        return nn.Sequential(*conv_bn_act(in_chs, out_chs, 3, stride))
    return SplitAttnConv2d(in_chs, out_chs, 3, stride, cfg.radix, cfg.cardinality)


def _avd_split(stride: int, cfg: ModelConfig) -> tuple[int, nn.Module]:
    """With avd, the conv keeps stride 1 and a 3x3 average pool after it does the striding."""
    if cfg.avd and stride > 1:
        return 1, nn.AvgPool2d(3, stride, padding=1)
    return stride, nn.Identity()


class Bottleneck(nn.Module):
    """1x1 reduce, split-attention 3x3, 1x1 expand (x4): the published ResNeSt block."""

    def __init__(self, in_chs: int, planes: int, stride: int, cfg: ModelConfig) -> None:
        super().__init__()
        width = int(planes * cfg.bottleneck_width / 64) * cfg.cardinality
        out_chs = planes * 4
        conv_stride, self.avd = _avd_split(stride, cfg)
        self.reduce = nn.Sequential(*conv_bn_act(in_chs, width, 1))
        self.spatial = _spatial_conv(width, width, conv_stride, cfg)
        self.expand = nn.Sequential(*conv_bn_act(width, out_chs, 1, act=False))
        self.shortcut = _shortcut(in_chs, out_chs, stride, cfg.avg_down)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(self.avd(self.spatial(self.reduce(x))))
        out += self.shortcut(x)  # in place: one activation-sized allocation less per block
        return self.act(out)


class BasicBlock(nn.Module):
    """Split-attention 3x3 then a plain 3x3, no expansion: the seed study's basic block."""

    def __init__(self, in_chs: int, planes: int, stride: int, cfg: ModelConfig) -> None:
        super().__init__()
        conv_stride, self.avd = _avd_split(stride, cfg)
        self.spatial = _spatial_conv(in_chs, planes, conv_stride, cfg)
        self.conv = nn.Sequential(*conv_bn_act(planes, planes, 3, act=False))
        self.shortcut = _shortcut(in_chs, planes, stride, cfg.avg_down)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.avd(self.spatial(x)))
        out += self.shortcut(x)
        return self.act(out)


def make_stem(kind: StemKind, stem_width: int) -> nn.Sequential:
    """imagenet: deep 3x3 stem (stride 2) + max-pool, /4. cifar: one 3x3 conv at stride 1, /1."""
    if kind == "cifar":
        return nn.Sequential(*conv_bn_act(3, stem_width * 2, 3))
    return nn.Sequential(
        *conv_bn_act(3, stem_width, 3, stride=2),
        *conv_bn_act(stem_width, stem_width, 3),
        *conv_bn_act(stem_width, stem_width * 2, 3),
        nn.MaxPool2d(3, 2, padding=1),
    )


class ResNeSt(nn.Module):
    """Stem, four stages of residual blocks, global average pool, linear classifier."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        block = Bottleneck if cfg.block == "bottleneck" else BasicBlock
        self.stem = make_stem(cfg.stem, cfg.stem_width)
        in_chs = cfg.stem_width * 2
        stages = []
        for index, depth in enumerate(cfg.layers):
            planes = cfg.base_planes * 2**index
            stride = 1 if index == 0 else 2
            blocks = []
            for block_index in range(depth):
                blocks.append(block(in_chs, planes, stride if block_index == 0 else 1, cfg))
                in_chs = planes * cfg.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(in_chs, cfg.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He init; the last BatchNorm of every residual branch starts at zero, so each block
        begins as the identity and a from-scratch run at lr 0.1 does not blow up early
        (Goyal et al. 2017, timm's zero_init_last)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.modules():
            if isinstance(block, Bottleneck | BasicBlock):
                last = block.expand if isinstance(block, Bottleneck) else block.conv
                nn.init.zeros_(last[1].weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head (transfer learning); the config follows so reports stay truthful."""
        self.fc = nn.Linear(self.fc.in_features, num_classes)
        self.config = replace(self.config, num_classes=num_classes)


_TINY = {"stem": "cifar", "stem_width": 8, "num_classes": 10, "input_size": 32}
# Named configs. Parameter counts at 1000 classes match the published model zoo exactly
# (see tests/test_models.py); input sizes are the model card's.
_ZOO = (
    ModelConfig("resnest14d", "bottleneck", (1, 1, 1, 1)),
    ModelConfig("resnest26d", "bottleneck", (2, 2, 2, 2)),
    ModelConfig("resnest50d", "bottleneck", (3, 4, 6, 3)),
    ModelConfig("resnest101e", "bottleneck", (3, 4, 23, 3), stem_width=64, input_size=256),
    ModelConfig("resnest200e", "bottleneck", (3, 24, 36, 3), stem_width=64, input_size=320),
    ModelConfig("resnest269e", "bottleneck", (3, 30, 48, 8), stem_width=64, input_size=416),
    # The seed study's basic-block ResNeSt-50: same stages and -D tricks, basic blocks.
    ModelConfig("resnest50d-basic", "basic", (3, 4, 6, 3)),
    # ResNet-50-D: resnest50d without split attention (radix 0), the baseline from the same code.
    ModelConfig("resnet50", "bottleneck", (3, 4, 6, 3), radix=0, avd=False),
    # Tiny configs for tests and smoke runs: CIFAR-sized, 0.14M and 0.33M parameters.
    ModelConfig("resnest-tiny", "bottleneck", (1, 1, 1, 1), base_planes=8, **_TINY),
    ModelConfig("resnest-tiny-basic", "basic", (1, 1, 1, 1), base_planes=16, **_TINY),
)
for _cfg in _ZOO:
    register(_cfg)
