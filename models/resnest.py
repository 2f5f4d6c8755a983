"""The ResNeSt network: split-attention bottleneck and basic blocks, two stems, built from a
ModelConfig (models/configs.py holds the config and the named ones).

Paper: Zhang et al., "ResNeSt: Split-Attention Networks", https://arxiv.org/abs/2004.08955
Basic block: Fu and Ge, "Optimization and Deployment Analysis of ResNeSt" (seed study, sec. 3.2.2).
All configs are "-D" style networks (deep stem, average-pool shortcut, avd striding) as published.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from resnest_bench.models.configs import ModelConfig, StemKind
from resnest_bench.models.layers import SplitAttnConv2d, conv_bn_act


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
        return self.stages(self.stem(x)).mean((2, 3), keepdim=True).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head (transfer learning); the config follows so reports stay truthful."""
        self.fc = nn.Linear(self.fc.in_features, num_classes)
        self.config = replace(self.config, num_classes=num_classes)
