"""PyTorch eager fp32 on the CPU: the reference every other runtime is compared against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from resnest_bench.harness.export import load_torch_artifact
from resnest_bench.harness.runtimes.base import Runtime, register


@register
class TorchEager(Runtime):
    """model(x) under inference_mode, torch.set_num_threads(threads)."""

    name = "torch-eager"
    artifact = "torch"

    def _load(self, path: Path) -> None:
        torch.set_num_threads(self.threads)
        self.model = self._prepare(load_torch_artifact(path))

    def _prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(batch)).numpy()
