"""ExecuTorch's Python runtime on a .pte lowered to the XNNPACK delegate: fp32, and int8 from
PT2E quantization (harness.export.executorch).

The program has a static batch of 1 (see the build module), so a batch of N runs as N
batch-1 calls. Threads: XNNPACK runs on ExecuTorch's process-wide threadpool, whose size the
Python bindings can only reset (`_unsafe_reset_threadpool`); every target runs in its own
process, so resetting it there is safe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resnest_bench.harness.runtimes.base import Package, Runtime, register


@register
class ExecuTorchXnnpack(Runtime):
    name = "executorch"
    artifacts = ("executorch_fp32", "executorch_int8")
    batching = "N x batch 1 (the program has a static batch of 1)"
    package = Package("executorch", "executorch", "executorch")

    def _load(self, path: Path) -> None:
        import torch
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime as EtRuntime

        portable_lib._unsafe_reset_threadpool(self.threads)
        self._torch = torch
        self._method = EtRuntime.get().load_program(path).load_method("forward")

    def _run(self, batch: np.ndarray) -> np.ndarray:
        images = self._torch.from_numpy(batch).split(1)
        logits = [self._method.execute([image])[0] for image in images]
        return self._torch.cat(logits).numpy().astype(np.float32, copy=False)
