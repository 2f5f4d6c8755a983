"""PyTorch eager under CPU autocast to bf16: what a PyTorch user on a CPU with AVX512_BF16 or
AMX gets from one `torch.autocast` line, on the fp32 weights, under the same accuracy limit."""

from __future__ import annotations

from typing import Any

from resnest_bench.harness.host.envinfo import bf16_missing
from resnest_bench.harness.runtimes.base import register
from resnest_bench.harness.runtimes.torch_eager import TorchEager


@register
class TorchBf16(TorchEager):
    """model(x) under inference_mode and autocast(cpu, bfloat16); logits back in fp32."""

    name = "torch-bf16"
    family = "torch-eager"
    precision = "bf16"

    @classmethod
    def placement(cls, device: str) -> str:
        return "cpu"  # a CPU target: GPU suites set their precision in training

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return bf16_missing()

    def _run(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model(batch).float()
