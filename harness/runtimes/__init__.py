"""Inference runtimes behind one interface; importing the package registers them all."""

from resnest_bench.harness.runtimes import ort, torch_compile, torch_eager
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
    "get_runtime",
    "ort",
    "register",
    "runtime_class",
    "torch_compile",
    "torch_eager",
]
