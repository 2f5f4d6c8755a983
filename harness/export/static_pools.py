"""Average pools in the forms mobile delegates take, for programs whose input shape is fixed.

ResNeSt-D's pools are the published ones: the shortcut's 2x2 pool uses ceil_mode (for odd
sides) and the avd 3x3 pool averages over its zero padding (count_include_pad). XNNPACK takes
neither, so ExecuTorch ran them in portable kernels. A program exported at one input shape
(ExecuTorch's .pte is batch 1 at the training size) knows every pool's input size, so each
pool can be replaced by an exact equivalent that the delegate runs:
- ceil_mode on sides that divide by the stride changes nothing: it is dropped;
- a pool that counts its zero padding is a depthwise convolution with weights 1/k^2.
The model itself keeps the published pools (weights, TorchScript and ONNX export unchanged).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _as_depthwise_conv(pool: nn.AvgPool2d, channels: int) -> nn.Conv2d:
    """A conv computing exactly `pool` (count_include_pad, no ceil_mode, no divisor)."""
    kernel, stride, padding = _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding)
    conv = nn.Conv2d(channels, channels, kernel, stride, padding, groups=channels, bias=False)
    conv.weight.data.fill_(1.0 / (kernel[0] * kernel[1]))
    conv.weight.requires_grad_(False)
    return conv


def _replacement(pool: nn.AvgPool2d, shape: torch.Size) -> nn.Module | None:
    """The delegate-friendly equivalent of `pool` on inputs of `shape`, or None to keep it."""
    if pool.divisor_override is not None:
        return None
    kernel, stride, padding = _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding)
    sides = shape[-2:]
    if pool.ceil_mode:
        spans = [side + 2 * pad - k for side, pad, k in zip(sides, padding, kernel, strict=True)]
        if any(span % s for span, s in zip(spans, stride, strict=True)):
            return None  # a ragged last window: ceil_mode matters here
    if any(padding) and pool.count_include_pad:
        return _as_depthwise_conv(pool, shape[1])
    if any(padding):
        return None  # averages only the real pixels at the border: no conv does that
    return nn.AvgPool2d(kernel, stride)


def static_pools(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of eval `model` whose average pools are exact equivalents a delegate takes, on
    inputs shaped like `example`; pools with no such equivalent are kept."""
    model = copy.deepcopy(model).eval()
    shapes: dict[str, torch.Size] = {}
    pools = {name: m for name, m in model.named_modules() if isinstance(m, nn.AvgPool2d)}

    def record(name: str):
        def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            shapes[name] = args[0].shape

        return hook

    hooks = [module.register_forward_pre_hook(record(name)) for name, module in pools.items()]
    with torch.no_grad():
        model(example)
    for hook in hooks:
        hook.remove()
    for name, pool in pools.items():
        new = _replacement(pool, shapes[name]) if name in shapes else None
        if new is not None:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, new)
    return model
