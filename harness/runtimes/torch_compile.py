"""torch.compile (inductor) on the suite's device with weight freezing: PyTorch's own graph
compiler.

Compilation is lazy, so the first call of each batch shape pays for it: the deploy measurement
reports that as the first-inference cold start and keeps it out of the timed samples (warm-up).
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from resnest_bench.harness.gpu import catalog as gpus
from resnest_bench.harness.runtimes.base import Machine, register
from resnest_bench.harness.runtimes.torch_eager import TorchEager

if TYPE_CHECKING:
    from torch import nn


def _cxx_compiler() -> str | None:
    """Inductor's CPU backend compiles generated C++; it honours $CXX, else looks for g++."""
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")


@register
class TorchCompile(TorchEager):
    """Inductor with freezing (constant-folds weights, fuses conv+bn) and static shapes."""

    name = "torch-compile"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if _cxx_compiler() is None:
            return "torch.compile on CPU needs a C++ compiler: install g++ or set $CXX"
        return None

    @classmethod
    def plan_skip_reason(cls, machine: Machine) -> str | None:
        """On a GPU, Triton needs sm_70+ and a C compiler."""
        return gpus.compile_problem(machine.cc, machine.missing_compilers)

    def _prepare(self, model: nn.Module) -> nn.Module:
        import torch
        import torch._inductor.config

        # Global, as PyTorch's CPU inference tutorial sets it: Dynamo reads this flag when it
        # traces (to lift the weights as constants, pytorch/pytorch#139272), and compiles are
        # lazy, one per new shape. torch.compile(options={"freezing": True}) only reaches
        # Inductor: on ResNeSt-50 (cifar stem, 2 threads, Zen 5) it ran 30.6 ms against 13.1 ms
        # with the global flag and 22.5 ms in eager. Each target has its own process.
        torch._inductor.config.freezing = True
        return torch.compile(model, backend="inductor", dynamic=False)
