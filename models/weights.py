"""Load pretrained weights: ours, the official ResNeSt release, and timm's resnest checkpoints.

The official release (github.com/zhanghang1989/ResNeSt) and timm use the same key names
(`conv1.0`, `bn1`, `layer1.0.conv2.fc1`, `downsample.1`, ...); timm adopted them, so one
mapping serves both, and `source` only documents where a file came from. Loading is strict:
every tensor must find its place with the right shape, or the error lists what did not fit.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from resnest_bench.models.pickles import code_running, imported_names
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


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
_PICKLE_MAGIC = b"\x80"  # torch.save's legacy format starts with a pickle protocol opcode
_ORT_MAGIC = b"ORTM"  # the flatbuffer identifier of an .ort file, at byte 4
# An ONNX ModelProto opens with ir_version (field 1: byte 0x08), then the producer's name.
_ONNX_HINT = re.compile(rb"pytorch|onnx|tf2onnx|keras2onnx|skl2onnx", re.IGNORECASE)


def load_file(path: str | Path) -> object:
    """torch.load(weights_only=True) of a local file (no code runs from it), or .safetensors.

    Every failure is a one-line ModelError that names the file and says, in our words, what it
    is and what was expected (torch's own messages run to many lines of advice).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    try:
        with warnings.catch_warnings():  # a refused raw pickle would add torch's warning line
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt, foreign or unsafe file
        raise ModelError(_refusal(path, exc)) from None


def _refusal(path: Path, exc: Exception) -> str:
    """Why torch's safe loader refused `path`, in one line: a pickle that would run code, a
    whole pickled object, or a file that is not (or no longer) a PyTorch file."""
    names = imported_names(path)
    unsafe = code_running(names)
    if unsafe:
        return (
            f"cannot read weights file {path}: refused as unsafe: loading it would call "
            f"{unsafe}, code rather than weights (nothing in it was run)"
        )
    # A whole pickled object (torch.save(model)) names a class the safe unpickler refuses.
    if isinstance(exc, pickle.UnpicklingError) and "unsupported global" in str(exc).lower():
        return (
            f"cannot read weights file {path}: it holds Python objects besides tensors "
            "(a whole model saved with torch.save(model)?); only tensor files are read, "
            "so save model.state_dict() instead"
        )
    return _not_torch(path)


def _not_torch(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(64)
    if not head:
        what = "it is empty"
    elif head[4:8] == _ORT_MAGIC:
        what = "it is an ONNX Runtime .ort model, which holds no PyTorch weights"
    elif path.suffix == ".onnx" or (head[:1] == b"\x08" and _ONNX_HINT.search(head)):
        what = "it is an ONNX model, which holds no PyTorch weights"
    elif head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        what = "it looks like a PyTorch file but is damaged or cut short"
    else:
        what = "it is not a PyTorch file"
    return (
        f"cannot read weights file {path}: {what} (expected a file written by torch.save, "
        "or a .safetensors file)"
    )


def _load_safetensors(path: Path) -> object:
    try:
        from safetensors.torch import load_file as load_safetensors
    except ImportError:
        raise ModelError(f"{path}: reading .safetensors needs `pip install safetensors`") from None
    try:
        return load_safetensors(str(path))
    except Exception:  # SafetensorError and OSError subtypes
        raise ModelError(
            f"cannot read weights file {path}: it is not a valid .safetensors file"
        ) from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file safely and return its state dict (see `state_dict_of`)."""
    return state_dict_of(load_file(path), path)


def state_dict_of(obj: object, path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a loaded file: unwrap {'model'|'state_dict': ...} and 'module.'."""
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
    """Read `path` and load its weights with `load_state`; returns the skipped keys."""
    return load_state(model, read_state_dict(path), path, source=source, skip=skip)


def load_state(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    path: str | Path,
    *,
    source: str = "auto",
    skip: Iterable[str] = (),
) -> list[str]:
    """Load a state dict read from `path` strictly, leaving keys under the `skip` prefixes
    (e.g. 'fc.') as they are.

    Returns the skipped keys. Raises ModelError listing missing, unexpected and misshapen keys.
    """
    if source not in SOURCES:
        raise ModelError(f"unknown weights source {source!r}; choose from {SOURCES}")
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
