"""Inference runtimes behind one interface; importing the package registers them all."""

from harness.runtimes import ort, torch_compile, torch_eager
from harness.runtimes.base import RUNTIMES, Runtime, get_runtime, register, runtime_class

__all__ = [
    "RUNTIMES",
    "Runtime",
    "get_runtime",
    "ort",
    "register",
    "runtime_class",
    "torch_compile",
    "torch_eager",
]
