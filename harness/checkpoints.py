"""The one reader and writer of model files.

Three kinds of file pass through here, and nowhere else:
- training checkpoints, written every `checkpoint_every` epochs with everything a resume needs;
- deployment torch artifacts, {format, config, state_dict}, loadable in a fresh process;
- a user's --checkpoint, read by `model_from_file`: one of ours (which carries its model
  config), a plain state dict, or official/timm ResNeSt weights (built by the caller's model).

Both of our formats store the model config once, as a plain dict, so any of our files rebuilds
its own network. Every read goes through models.weights.load_file (weights_only=True: no code
runs from a file) and fails with a one-line BenchError naming the file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from torch import nn

from resnest_bench import models
from resnest_bench.harness.data.types import Preprocessing
from resnest_bench.harness.errors import BenchError, one_line
from resnest_bench.harness.results.training import EpochRecord
from resnest_bench.harness.store.atomic import atomic_torch_save
from resnest_bench.harness.store.storage import os_error_message
from resnest_bench.models.weights import detect_source, load_file, load_state, state_dict_of

TRAIN_FORMAT = "resnest-bench/train-checkpoint"
TRAIN_VERSION = 2  # 2: the model config stored once, as a dict (1 also kept a JSON "identity")
ARTIFACT_FORMAT = "resnest-bench/state_dict/v1"
# The normalisation every official ResNeSt and timm resnest checkpoint was trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRETRAINED = "ImageNet (official/timm pretrained weights)"  # Preprocessing.source of such files


def _read(path: Path) -> object:
    try:
        return load_file(path)
    except models.ModelError as exc:
        raise BenchError(str(exc)) from None


def config_to_dict(config: models.ModelConfig) -> dict[str, Any]:
    """A model config as plain data (lists, not tuples), as our files store it."""
    return {**dataclasses.asdict(config), "layers": list(config.layers)}


def config_from_dict(raw: object, path: Path) -> models.ModelConfig:
    """The config a file of ours carries, or BenchError saying the file's is unreadable."""
    try:
        return models.ModelConfig(**{**raw, "layers": tuple(raw["layers"])})  # type: ignore[dict-item]
    except (TypeError, KeyError, models.ModelError) as exc:
        raise BenchError(f"{path} carries a model config this build cannot read ({exc})") from None


# ---------------------------------------------------------------------------------------------
# Training checkpoints


@dataclass(frozen=True)
class TrainCheckpoint:
    """The state after a completed epoch: enough to continue as if the run never stopped.

    `identity` is what else must match for a resume (data set, recipe, seed); `state` holds
    the model, optimizer, loss scaler and RNG states as the trainer saved them.
    """

    model_config: models.ModelConfig
    identity: dict[str, Any]
    state: dict[str, Any]
    batch_size: int
    failed_batch_sizes: tuple[int, ...]
    records: tuple[EpochRecord, ...]
    # CPU training's thread count: a resumed run keeps it (other threads sum in another order)
    cpu_threads: int | None = None

    @property
    def epoch(self) -> int:
        """Epochs completed (1-based number of the last one)."""
        return len(self.records)


class CheckpointWriteError(BenchError):
    """A checkpoint could not be written; the previous one, if any, is whole (atomic write)."""

    def __init__(self, message: str, previous_epoch: int) -> None:
        super().__init__(message)
        self.previous_epoch = previous_epoch


def write_checkpoint(path: str | os.PathLike[str], checkpoint: TrainCheckpoint) -> None:
    """Atomically: a kill or a full disk mid-write leaves the previous epoch's checkpoint whole
    (CheckpointWriteError says so)."""
    payload = {
        "format": TRAIN_FORMAT,
        "version": TRAIN_VERSION,
        "model_config": config_to_dict(checkpoint.model_config),
        "identity": checkpoint.identity,
        **checkpoint.state,
        "batch_size": checkpoint.batch_size,
        "failed_batch_sizes": list(checkpoint.failed_batch_sizes),
        "records": [record.model_dump() for record in checkpoint.records],
        "cpu_threads": checkpoint.cpu_threads,
    }
    try:
        atomic_torch_save(payload, path)
    except OSError as exc:
        kept = checkpoint.epoch - 1
        survived = (
            f"the checkpoint of epoch {kept} is kept whole" if kept else "no epoch was saved yet"
        )
        raise CheckpointWriteError(
            f"could not write checkpoint of epoch {checkpoint.epoch}: {os_error_message(exc)}; "
            f"{survived}",
            kept,
        ) from None


_TRAIN_STATE_KEYS = ("model", "optimizer", "scaler", "rng")


def read_checkpoint(path: str | os.PathLike[str]) -> TrainCheckpoint:
    """One of our training checkpoints, or BenchError saying what the file is instead."""
    path = Path(path)
    payload = _read(path)
    if not isinstance(payload, dict) or payload.get("format") != TRAIN_FORMAT:
        raise BenchError(f"{path} is not a resnest-bench training checkpoint")
    if payload.get("version") != TRAIN_VERSION:
        raise BenchError(
            f"{path} is checkpoint version {payload.get('version')}; this build resumes "
            f"version {TRAIN_VERSION} only (start the run anew)"
        )
    try:
        return TrainCheckpoint(
            model_config=config_from_dict(payload["model_config"], path),
            identity=payload["identity"],
            state={key: payload[key] for key in _TRAIN_STATE_KEYS},
            batch_size=payload["batch_size"],
            failed_batch_sizes=tuple(payload["failed_batch_sizes"]),
            records=tuple(EpochRecord.model_validate(r) for r in payload["records"]),
            cpu_threads=payload.get("cpu_threads"),
        )
    except (KeyError, ValidationError) as exc:
        raise BenchError(
            f"{path} is a damaged training checkpoint ({one_line(exc, typed=False)})"
        ) from None


# ---------------------------------------------------------------------------------------------
# Deployment artifacts


def save_torch_artifact(
    model: nn.Module, path: str | os.PathLike[str], preprocessing: Preprocessing | None = None
) -> int:
    """Write {format, config, state_dict, preprocessing} atomically; returns the size in bytes."""
    config = getattr(model, "config", None)
    if not isinstance(config, models.ModelConfig):
        raise BenchError("only models built by models.create_model can be saved for deployment")
    payload = {
        "format": ARTIFACT_FORMAT,
        "config": config_to_dict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "preprocessing": preprocessing.to_dict() if preprocessing else None,
    }
    atomic_torch_save(payload, path)
    return Path(path).stat().st_size


def load_torch_artifact(path: str | os.PathLike[str]) -> models.ResNeSt:
    """Rebuild the eval-mode model from a save_torch_artifact file; bad files raise BenchError."""
    file = Path(path)
    if not file.is_file():
        raise BenchError(f"model file not found: {file} (run the export step first)")
    payload = _read(file)
    if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
        raise BenchError(
            f"{file} is not a deployment model file (expected format {ARTIFACT_FORMAT}); "
            "write it with harness.checkpoints.save_torch_artifact"
        )
    model = models.ResNeSt(config_from_dict(payload["config"], file))
    try:
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise BenchError(
            f"model file {file} does not match its config ({one_line(exc, typed=False)})"
        ) from None
    return model.eval()


# ---------------------------------------------------------------------------------------------
# A user's --checkpoint


def _carried_config(payload: object, path: Path) -> models.ModelConfig | None:
    """The config of a file of ours (artifact or training checkpoint); None for others."""
    if not isinstance(payload, Mapping):
        return None
    if payload.get("format") == ARTIFACT_FORMAT:
        return config_from_dict(payload.get("config"), path)
    if payload.get("format") == TRAIN_FORMAT:
        return config_from_dict(payload.get("model_config"), path)
    return None


def _carried_preprocessing(payload: object, path: Path) -> Preprocessing | None:
    """The preprocessing a file of ours stores (artifacts; training checkpoints keep it in their
    data set identity); None for foreign files and for ours written before it was stored."""
    if not isinstance(payload, Mapping):
        return None
    raw = payload.get("preprocessing")
    if payload.get("format") == TRAIN_FORMAT:
        data = (payload.get("identity") or {}).get("dataset") or {}
        raw = data if data.get("mean") else None
    if raw is None:
        return None
    try:
        return Preprocessing.from_dict(raw)
    except ValueError as exc:
        raise BenchError(f"{path} carries preprocessing that cannot be used ({exc})") from None


def model_from_file(
    path: str | os.PathLike[str],
    *,
    fallback: Callable[[], models.ResNeSt],
    num_classes: int,
) -> models.ResNeSt:
    """A model with the weights of `path` (see read_model_file)."""
    return read_model_file(path, fallback=fallback, num_classes=num_classes)[0]


def read_model_file(
    path: str | os.PathLike[str],
    *,
    fallback: Callable[[], models.ResNeSt],
    num_classes: int,
) -> tuple[models.ResNeSt, Preprocessing | None]:
    """A model with the weights of `path`, read once, and the preprocessing it was trained
    with when the file carries it (official/timm weights: `pretrained_preprocessing`).

    Our files rebuild the network they were made with; plain state dicts and official/timm
    weights are loaded into `fallback()` (the suite's model). The file's class count must be
    `num_classes`: an ImageNet head does not classify CIFAR (fine-tune it with `transfer`).
    """
    path = Path(path)
    payload = _read(path)
    config = _carried_config(payload, path)
    try:
        state = state_dict_of(payload, path)
    except models.ModelError as exc:
        raise BenchError(
            f"{exc} (expected a resnest-bench model file or training checkpoint, or a state "
            "dict of ResNeSt weights: ours, official or timm)"
        ) from None
    head = state.get("fc.weight")  # the same key in ours, official and timm files
    classes = config.num_classes if config else (len(head) if head is not None else None)
    if classes is not None and classes != num_classes:
        raise BenchError(
            f"{path} holds a {classes}-class model but the data set has {num_classes} classes "
            "(fine-tune it on this data set with the transfer step)"
        )
    model = models.ResNeSt(config) if config else fallback()
    try:
        load_state(model, state, path)
    except models.ModelError as exc:
        raise BenchError(str(exc)) from None
    if config is None and detect_source(state) == "official":
        return model, pretrained_preprocessing(model.config)
    return model, _carried_preprocessing(payload, path)


def pretrained_preprocessing(config: models.ModelConfig) -> Preprocessing:
    """What official/timm weights expect: ImageNet's mean/std at the model card's input size.

    Such files carry no preprocessing, and the data set's own statistics (or its 32 px) would
    feed the network inputs it never saw. The classes are unnamed (the head's size is checked
    against the data set's); `source` is PRETRAINED, which is how callers recognise the case.
    """
    return Preprocessing(IMAGENET_MEAN, IMAGENET_STD, config.input_size, (), PRETRAINED)
