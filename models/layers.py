"""Reusable layers of the ResNeSt family: the split-attention convolution and small conv helpers.

Split attention: Zhang et al., "ResNeSt: Split-Attention Networks", https://arxiv.org/abs/2004.08955
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from resnest_bench.models.registry import ModelError


def conv_bn_act(
    in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, act: bool = True
) -> list[nn.Module]:
    """Conv (no bias, same padding) + BatchNorm (+ ReLU): the unit stems and blocks repeat."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_chs),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return layers


def attention_channels(in_chs: int, radix: int) -> int:
    """Width of the attention MLP, as published: max(in * radix / 4, 32)."""
    return max(in_chs * radix // 4, 32)


class SplitAttnConv2d(nn.Module):
    """A k x k conv producing `radix` splits per cardinal group, fused by channel attention.

    The conv emits radix * out_chs channels in cardinality * radix groups; the splits are summed,
    globally pooled and passed through a grouped two-layer MLP whose output is normalised per
    cardinal group: softmax over the radix splits, or a sigmoid gate when radix is 1 (then the
    block is squeeze-and-excitation on a grouped conv). All reshapes use sizes fixed at
    construction and the batch dimension is never computed in Python, so the TorchScript and the
    dynamo ONNX exporters both trace it with a dynamic batch axis.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        radix: int = 2,
        cardinality: int = 1,
    ) -> None:
        super().__init__()
        if radix < 1 or cardinality < 1:
            raise ModelError(f"radix and cardinality must be >= 1, got {radix} and {cardinality}")
        if in_chs % (radix * cardinality) or out_chs % cardinality:
            raise ModelError(
                f"split attention {in_chs}->{out_chs} channels cannot form "
                f"radix {radix} x cardinality {cardinality} groups"
            )
        attn_chs = attention_channels(in_chs, radix)
        if attn_chs % cardinality:
            raise ModelError(
                f"split attention's {attn_chs}-channel attention MLP cannot form "
                f"{cardinality} cardinal groups"
            )
        self.radix = radix
        self.cardinality = cardinality
        self.out_chs = out_chs
        self.conv = nn.Conv2d(
            in_chs,
            out_chs * radix,
            kernel_size,
            stride,
            kernel_size // 2,
            groups=cardinality * radix,
            bias=False,
        )
        self.bn0 = nn.BatchNorm2d(out_chs * radix)
        self.act0 = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(out_chs, attn_chs, 1, groups=cardinality)
        self.bn1 = nn.BatchNorm2d(attn_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(attn_chs, out_chs * radix, 1, groups=cardinality)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act0(self.bn0(self.conv(x)))
        if self.radix == 1:
            gate = self.fc2(self.act1(self.bn1(self.fc1(x.mean((2, 3), keepdim=True)))))
            return x * torch.sigmoid(gate)
        # Every op here is one that mobile delegates (XNNPACK in ExecuTorch and LiteRT) take:
        # 4-D channel slices (not split_with_sizes), Adds, a keepdim mean, softmax over the last
        # axis, reshapes; no squeezes. The splits stay 4-D and are summed with Adds: a 5-D view
        # summed over the radix axis exports as ReduceSum plus Transposes that ORT runs in fp32
        # between int8 nodes (ResNeSt-50 batch 1: ORT fp32 13.0 -> 11.4 ms, int8 6.8 -> 6.5 ms).
        c, r, per_group = self.out_chs, self.radix, self.out_chs // self.cardinality
        splits = [x[:, i * c : (i + 1) * c] for i in range(r)]  # radix x (B, C, H, W)
        gap = sum(splits[1:], splits[0]).mean((2, 3), keepdim=True)
        attn = self.fc2(self.act1(self.bn1(self.fc1(gap))))  # B, R*C, 1, 1 in (group, radix) order
        # fc2 is grouped by cardinal group; softmax runs over the radix splits inside each group,
        # moved to the last axis: (B, card, R, C/card) -> (B, card, C/card, R) -> (B, C, 1, R).
        attn = attn.reshape(-1, self.cardinality, r, per_group).transpose(2, 3)
        weights = F.softmax(attn, dim=-1)
        if weights.dtype != x.dtype:  # CUDA autocast runs softmax in fp32: else every block
            weights = weights.to(x.dtype)  # output (and the residual add) silently became fp32
        weights = weights.reshape(-1, c, 1, r)
        out = splits[0] * weights[..., 0:1]
        for i in range(1, r):
            out = out + splits[i] * weights[..., i : i + 1]
        return out
