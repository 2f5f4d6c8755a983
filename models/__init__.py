"""The ResNeSt family; knows nothing of the harness.

model = models.create_model("resnest50d", num_classes=10, stem="cifar")

Importing this package does not import torch: configs and their names (models.configs) are
plain data, and the network (models.resnest) loads on first use of ResNeSt or create_model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resnest_bench.models.configs import ModelConfig
from resnest_bench.models.registry import ModelError, get_config, list_models

if TYPE_CHECKING:
    from resnest_bench.models.resnest import ResNeSt


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
    from resnest_bench.models.resnest import ResNeSt

    cfg = get_config(name).with_overrides(
        num_classes=num_classes,
        stem=stem,
        radix=radix,
        cardinality=cardinality,
        input_size=input_size,
    )
    return ResNeSt(cfg)


def __getattr__(name: str) -> Any:
    """ResNeSt on first use, so that listing configs never pays for importing torch."""
    if name == "ResNeSt":
        from resnest_bench.models.resnest import ResNeSt

        return ResNeSt
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ModelConfig", "ModelError", "ResNeSt", "create_model", "get_config", "list_models"]
