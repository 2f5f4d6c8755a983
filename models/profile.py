"""Parameter and multiply-accumulate counts for any config and input size."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int, batch_size: int = 1) -> int:
    """MACs of one forward pass (convolutions and matmuls, as published model cards count them).

    Runs on a meta-device copy, so even resnest269e at 416 px costs no real compute or memory.
    """
    meta_model = _to_meta(model)
    x = torch.empty(batch_size, 3, input_size, input_size, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta_model(x)
    return counter.get_total_flops() // 2 // batch_size


def _to_meta(model: nn.Module) -> nn.Module:
    cfg = getattr(model, "config", None)
    if cfg is not None:
        with torch.device("meta"):
            meta_model = type(model)(cfg)
        return meta_model.eval()
    return model.to("meta").eval()  # foreign modules: moved, which the caller must accept


def model_summary(name: str, **overrides: object) -> dict[str, object]:
    """Name, block, stem, input size, params and MACs of a config; built on meta, so cheap."""
    from resnest_bench.models import create_model

    with torch.device("meta"):
        model = create_model(name, **overrides)
    cfg = model.config
    return {
        "name": name,
        "block": cfg.block,
        "stem": cfg.stem,
        "radix": cfg.radix,
        "cardinality": cfg.cardinality,
        "num_classes": cfg.num_classes,
        "input_size": cfg.input_size,
        "params": count_params(model),
        "macs": count_macs(model, cfg.input_size),
    }


# aten ops that move no data on a GPU (views, metadata, allocation): not kernels.
_NO_KERNEL = frozenset({
    "view", "_unsafe_view", "t", "detach", "expand", "permute", "transpose", "reshape",
    "as_strided", "unsqueeze", "squeeze", "alias", "slice", "select", "split",
    "split_with_sizes", "unbind", "empty", "empty_like", "empty_strided", "lift_fresh",
})  # fmt: skip
_DENSE = frozenset({"convolution", "convolution_backward", "mm", "addmm", "bmm"})


@dataclass(frozen=True)
class StepWork:
    """What one training step (forward, loss, backward, optimizer) of a model asks of a GPU,
    counted from the aten ops it dispatches: each op one kernel, reading its inputs and writing
    its outputs once (unfused, as eager runs it). `dense_*`: the convolutions' and matmuls'
    share, what is left when a compiler fuses every pointwise and normalisation op into its
    neighbours."""

    kernels: int
    flops: float
    bytes: float
    dense_kernels: int
    dense_bytes: float


def count_train_step(model: nn.Module, input_size: int, batch_size: int) -> StepWork:
    """Forward, cross-entropy, backward and an SGD step with momentum (multi-tensor, as PyTorch
    runs it on a GPU: a handful of kernels) of `model` at `batch_size`, on the meta device (no
    weights, no compute: a ResNeSt-50 step counts in about a second); fp32 bytes."""
    from torch.utils._python_dispatch import TorchDispatchMode

    meta_model = _to_meta(model).train()
    x = torch.empty(batch_size, 3, input_size, input_size, device="meta")
    labels = torch.zeros(batch_size, dtype=torch.long, device="meta")
    optimizer = torch.optim.SGD(meta_model.parameters(), lr=0.1, momentum=0.9, foreach=True)
    nn.functional.cross_entropy(meta_model(x), labels).backward()
    optimizer.step()  # the first step makes the momentum buffers; the counted one is the next
    optimizer.zero_grad(set_to_none=True)
    tally = {"kernels": 0, "bytes": 0, "dense_kernels": 0, "dense_bytes": 0}

    class Tally(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            op = func._schema.name.partition("::")[2]
            if op not in _NO_KERNEL:
                tensors = torch.utils._pytree.tree_leaves((args, kwargs, out))
                moved = sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))
                tally["kernels"] += 1
                tally["bytes"] += moved
                if op in _DENSE:
                    tally["dense_kernels"] += 1
                    tally["dense_bytes"] += moved
            return out

    with FlopCounterMode(display=False) as counter, Tally():
        nn.functional.cross_entropy(meta_model(x), labels).backward()
        optimizer.step()
    return StepWork(flops=float(counter.get_total_flops()), **tally)
