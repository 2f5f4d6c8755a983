"""The ResNeSt family; knows nothing of the harness.

model = models.create_model("resnest50d", num_classes=10, stem="cifar")
"""

from __future__ import annotations

from resnest_bench.models.registry import ModelError, get_config, list_models
from resnest_bench.models.resnest import ModelConfig, ResNeSt


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    stem: str | None = None,
    radix: int | None = None,
    cardinality: int | None = None,
    input_size: int | None = None,
) -> ResNeSt:
    """Build a named config with optional overrides (None keeps the config's value)."""
    cfg = get_config(name).with_overrides(
        num_classes=num_classes,
        stem=stem,
        radix=radix,
        cardinality=cardinality,
        input_size=input_size,
    )
    return ResNeSt(cfg)


__all__ = ["ModelConfig", "ModelError", "ResNeSt", "create_model", "get_config", "list_models"]
