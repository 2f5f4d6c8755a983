"""The PyTorch deployment artifact: config + state_dict in one file, so a fresh process can
rebuild the model (loadable with weights_only=True).

Interim home: harness/checkpoints.py (branch `train`) becomes the one reader/writer of model
files, and these two functions move there when the branches merge.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from torch import nn

from resnest_bench.harness.atomic import atomic_torch_save
from resnest_bench.harness.build.files import first_line
from resnest_bench.harness.errors import BenchError

TORCH_ARTIFACT_FORMAT = "resnest-bench/state_dict/v1"


def save_torch_artifact(model: nn.Module, path: str | os.PathLike[str]) -> int:
    """Write {format, config, state_dict} atomically; returns the file size in bytes."""
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise BenchError("only models built by models.create_model can be saved for deployment")
    payload = {
        "format": TORCH_ARTIFACT_FORMAT,
        "config": dataclasses.asdict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_torch_save(payload, path)
    return Path(path).stat().st_size


def load_torch_artifact(path: str | os.PathLike[str]) -> nn.Module:
    """Rebuild the eval-mode model from a save_torch_artifact file; bad files raise BenchError."""
    from resnest_bench import models
    from resnest_bench.models.weights import load_file

    file = Path(path)
    if not file.is_file():
        raise BenchError(f"model file not found: {file} (run the export step first)")
    try:
        payload = load_file(file)
    except models.ModelError as exc:
        raise BenchError(str(exc)) from None
    if not isinstance(payload, dict) or payload.get("format") != TORCH_ARTIFACT_FORMAT:
        raise BenchError(
            f"{file} is not a deployment model file (expected format {TORCH_ARTIFACT_FORMAT}); "
            "write it with save_torch_artifact"
        )
    try:
        model = models.ResNeSt(models.ModelConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise BenchError(
            f"model file {file} does not match its config ({first_line(exc)})"
        ) from None
    return model.eval()
