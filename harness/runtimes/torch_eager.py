"""PyTorch eager fp32 on the suite's device: the reference every other runtime is compared
against. On a GPU, batches are staged in device memory and the output stays there until
fetched, so timing covers the model alone (synchronised on both sides)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resnest_bench.harness.clock import cuda_sync
from resnest_bench.harness.runtimes.base import Runtime, register

if TYPE_CHECKING:
    from torch import nn


@register
class TorchEager(Runtime):
    """model(x) under inference_mode, torch.set_num_threads(threads), one inter-op thread."""

    name = "torch-eager"
    artifacts = ("state_dict",)

    @classmethod
    def placement(cls, device: str) -> str:
        return device

    def _load(self, path: Path) -> None:
        import torch

        from resnest_bench.harness.checkpoints import load_torch_artifact
        from resnest_bench.harness.gpu.accel import configure_inference_backends

        configure_inference_backends(self.device)  # cuDNN where it has kernels; fp32, not TF32
        torch.set_num_threads(self.threads)
        # one model call at a time: no inter-op pool competing for the same cores (set once per
        # process; a process that already ran parallel work keeps its pool). OpenMP's wait
        # policy comes from the environment the measuring process was started with.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
        self._sync = cuda_sync(self.device)
        self.model = self._prepare(load_torch_artifact(path).to(self.device))

    def _prepare(self, model: nn.Module) -> nn.Module:
        return model

    def _stage(self, batch: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(batch).to(self.device)

    def _run(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self.model(batch)

    def fetch(self, output: Any) -> np.ndarray:
        return output.cpu().numpy()

    def sync(self) -> None:
        if self._sync is not None:
            self._sync()

    def release(self) -> None:
        import torch

        if self.device != "cpu":
            torch.cuda.empty_cache()
