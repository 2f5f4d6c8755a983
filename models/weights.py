"""Load pretrained weights: ours, the official ResNeSt release, and timm's resnest checkpoints.

The official release (github.com/zhanghang1989/ResNeSt) and timm use the same key names
(`conv1.0`, `bn1`, `layer1.0.conv2.fc1`, `downsample.1`, ...); timm adopted them, so one
mapping serves both, and `source` only documents where a file came from. Loading is strict:
every tensor must find its place with the right shape, or the error lists what did not fit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from resnest_bench.models.registry import ModelError

SOURCES = ("auto", "ours", "official", "timm")

# (external prefix, our prefix) inside one residual block, most specific first.
_BLOCK_RENAMES = (
    ("conv2.weight", "spatial.0.weight"),  # radix 0 (ResNet-D): a plain conv ...
    ("bn2.", "spatial.1."),  # ... and its BatchNorm
    ("conv2.", "spatial."),  # split attention: conv, bn0, fc1, bn1, fc2 keep their names
    ("conv1.", "reduce.0."),
    ("bn1.", "reduce.1."),
    ("conv3.", "expand.0."),
    ("bn3.", "expand.1."),
    ("downsample.", "shortcut."),
)
_TOP_RENAMES = (("bn1.", "stem.7."), ("conv1.", "stem."), ("fc.", "fc."))
_EXTERNAL_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.(.*)$")
_OUR_BLOCK = re.compile(r"^stages\.(\d+)\.(\d+)\.(.*)$")


def _rename(rest: str, renames: Iterable[tuple[str, str]], reverse: bool) -> str | None:
    for external, ours in renames:
        old, new = (ours, external) if reverse else (external, ours)
        if rest.startswith(old):
            return new + rest[len(old) :]
    return None


def external_to_ours(key: str) -> str | None:
    """Map one official/timm key to ours; None when it has no place in our networks."""
    match = _EXTERNAL_BLOCK.match(key)
    if match:
        stage, block, rest = match.groups()
        mapped = _rename(rest, _BLOCK_RENAMES, reverse=False)
        return None if mapped is None else f"stages.{int(stage) - 1}.{block}.{mapped}"
    return _rename(key, _TOP_RENAMES, reverse=False)


def ours_to_external(key: str) -> str | None:
    """The inverse of `external_to_ours` (used to write and test the external format)."""
    match = _OUR_BLOCK.match(key)
    if match:
        stage, block, rest = match.groups()
        mapped = _rename(rest, _BLOCK_RENAMES, reverse=True)
        return None if mapped is None else f"layer{int(stage) + 1}.{block}.{mapped}"
    return _rename(key, _TOP_RENAMES, reverse=True)


def load_file(path: str | Path) -> object:
    """torch.load(weights_only=True) of a local file (no code runs from it), or .safetensors;
    a missing, torn or foreign file is a one-line ModelError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file as load_safetensors

            return load_safetensors(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise ModelError(f"{path}: reading .safetensors needs `pip install safetensors`") from None
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ModelError(f"cannot read weights file {path}: {reason}") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely; unwrap {'model'|'state_dict': ...} and a 'module.' prefix."""
    obj = load_file(path)
    for wrapper in ("model", "state_dict", "model_state"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ModelError(f"{path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def detect_source(state: Mapping[str, torch.Tensor]) -> str:
    if any(key.startswith("stages.") for key in state):
        return "ours"
    if any(key.startswith("layer1.") for key in state):
        return "official"
    raise ModelError("weights match no known key format (ours, official ResNeSt or timm)")


def load_pretrained(
    model: nn.Module,
    path: str | Path,
    source: str = "auto",
    skip: Iterable[str] = (),
) -> list[str]:
    """Load weights strictly, leaving keys under the `skip` prefixes (e.g. 'fc.') as they are.

    Returns the skipped keys. Raises ModelError listing missing, unexpected and misshapen keys.
    """
    if source not in SOURCES:
        raise ModelError(f"unknown weights source {source!r}; choose from {SOURCES}")
    state = read_state_dict(path)
    if source == "auto":
        source = detect_source(state)
    skip = tuple(skip)
    if source != "ours":
        mapped = {external_to_ours(k): v for k, v in state.items()}
        unplaced = [k for k, new in zip(state, mapped, strict=True) if new is None]
        state = {k: v for k, v in mapped.items() if k is not None}
    else:
        unplaced = []
    target = model.state_dict()
    skipped = [k for k in target if k.startswith(skip)]
    state = {k: v for k, v in state.items() if not k.startswith(skip)}
    missing = [k for k in target if k not in state and k not in skipped]
    unexpected = unplaced + [k for k in state if k not in target]
    misshapen = [
        f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}"
        for k, v in state.items()
        if k in target and v.shape != target[k].shape
    ]
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", misshapen),
        )
        if keys
    ]
    if problems:
        raise ModelError(f"{path} ({source} format) does not fit the model: " + "; ".join(problems))
    model.load_state_dict({**{k: target[k] for k in skipped}, **state}, strict=True)
    return skipped
