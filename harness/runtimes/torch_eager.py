"""PyTorch eager fp32 on the CPU: the reference every other runtime is compared against."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from resnest_bench.harness.runtimes.base import Runtime, register

if TYPE_CHECKING:
    from torch import nn


@register
class TorchEager(Runtime):
    """model(x) under inference_mode, torch.set_num_threads(threads), one inter-op thread."""

    name = "torch-eager"
    artifacts = ("state_dict",)

    def _load(self, path: Path) -> None:
        import torch

        from resnest_bench.harness.checkpoints import load_torch_artifact

        torch.set_num_threads(self.threads)
        # one model call at a time: no inter-op pool competing for the same cores (set once per
        # process; a process that already ran parallel work keeps its pool). OpenMP's wait
        # policy comes from the environment the measuring process was started with.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
        self.model = self._prepare(load_torch_artifact(path))

    def _prepare(self, model: nn.Module) -> nn.Module:
        return model

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(batch)).numpy()
