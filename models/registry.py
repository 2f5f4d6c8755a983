"""Named model configs: one place that lists what `create_model` can build."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resnest_bench.models.configs import ModelConfig

_CONFIGS: dict[str, ModelConfig] = {}


class ModelError(ValueError):
    """A bad model request: unknown name, invalid config value, or weights that do not fit."""


def register(cfg: ModelConfig) -> ModelConfig:
    if cfg.name in _CONFIGS:
        raise ModelError(f"model config {cfg.name!r} is registered twice")
    _CONFIGS[cfg.name] = cfg
    return cfg


def list_models() -> list[str]:
    return list(_CONFIGS)


def get_config(name: str) -> ModelConfig:
    try:
        return _CONFIGS[name]
    except KeyError:
        known = ", ".join(_CONFIGS)
        raise ModelError(f"unknown model {name!r}; known models: {known}") from None
