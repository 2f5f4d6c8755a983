"""Parameter and multiply-accumulate counts for any config and input size."""

from __future__ import annotations

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
