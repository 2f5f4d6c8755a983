"""Inference runtimes behind one interface; importing the package registers them all.

Registration order is target order: PyTorch eager first (the reference every other target is
compared with), then torch.compile, eager in bf16, ONNX Runtime, OpenVINO (f32, bf16),
ExecuTorch, LiteRT. Importing this
package imports no torch, onnxruntime, openvino, executorch or ai_edge_litert.
"""

from resnest_bench.harness.runtimes import torch_eager  # noqa: I001 - order is target order
from resnest_bench.harness.runtimes import torch_compile
from resnest_bench.harness.runtimes import torch_bf16
from resnest_bench.harness.runtimes import ort
from resnest_bench.harness.runtimes import openvino
from resnest_bench.harness.runtimes import executorch
from resnest_bench.harness.runtimes import litert
from resnest_bench.harness.runtimes.base import (
    RUNTIMES,
    Runtime,
    get_runtime,
    register,
    runtime_class,
)

__all__ = [
    "RUNTIMES",
    "Runtime",
    "executorch",
    "get_runtime",
    "litert",
    "openvino",
    "ort",
    "register",
    "runtime_class",
    "torch_bf16",
    "torch_compile",
    "torch_eager",
]
