"""LiteRT (TensorFlow Lite's successor, `ai-edge-litert`) on a .tflite file, XNNPACK delegate.

The interpreter applies XNNPACK by default with the runtime's threads; the harness feeds the same
float32 NCHW batches as every runtime (the .tflite keeps PyTorch's NCHW input; its converter
moves to NHWC inside the graph). litert-torch exports a static batch of 1 (its dynamic batch
fails to lower), and resizing such a graph mixes images in its baked reshapes: a batch of N then
runs as N batch-1 calls. A graph whose input declares a dynamic batch (-1) is resized instead.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from resnest_bench.harness.results.deployment import DelegateCoverage
from resnest_bench.harness.runtimes.base import Package, Runtime, register

DELEGATE = "XNNPACK"


@register
class LiteRt(Runtime):
    name = "litert"
    artifacts = ("litert_fp32", "litert_int8")
    package = Package("ai_edge_litert", "ai-edge-litert", "litert")

    def _load(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=self.threads)
        self._interpreter.allocate_tensors()
        detail = self._interpreter.get_input_details()[0]
        self._input = detail["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape = tuple(int(d) for d in detail["shape"])
        self._dynamic = int(detail["shape_signature"][0]) == -1

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape == self._shape:
            return self._invoke(batch)
        if self._dynamic:
            self._interpreter.resize_tensor_input(self._input, list(batch.shape))
            self._interpreter.allocate_tensors()
            self._shape = batch.shape
            return self._invoke(batch)
        return np.concatenate([self._invoke(batch[i : i + 1]) for i in range(len(batch))])

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).astype(np.float32, copy=True)


def batching(path: Path) -> str:
    """How the runtime runs a batch of N on this file: resized, or N batch-1 calls."""
    from ai_edge_litert.interpreter import Interpreter

    signature = Interpreter(model_path=str(path)).get_input_details()[0]["shape_signature"]
    if int(signature[0]) == -1:
        return "dynamic batch: the input is resized to each batch"
    return f"static batch {int(signature[0])}: a batch of N runs as N calls"


def xnnpack_coverage(path: Path, threads: int = 1) -> DelegateCoverage:
    """Which of the graph's ops the XNNPACK delegate takes, read from the interpreter itself.

    After the default delegate is applied, each DELEGATE node stands for one partition; its
    ops are those found walking back from its outputs to its inputs through the original
    nodes. Every other op runs in LiteRT's reference (builtin) kernels.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    graph = interpreter._interpreter  # node list: the only place delegation shows
    nodes = range(graph.NumNodes())
    names = {i: graph.NodeName(i) for i in nodes}
    original = [i for i in nodes if names[i] != "DELEGATE"]
    producer = {int(t): i for i in original for t in graph.NodeOutputs(i)}
    delegated: set[int] = set()
    for node in (i for i in nodes if names[i] == "DELEGATE"):
        boundary = {int(t) for t in graph.NodeInputs(node)}
        todo = [int(t) for t in graph.NodeOutputs(node)]
        while todo:
            tensor = todo.pop()
            op = producer.get(tensor)
            if tensor in boundary or op is None or op in delegated:
                continue
            delegated.add(op)
            todo.extend(int(t) for t in graph.NodeInputs(op))
    fallback = Counter(names[i] for i in original if i not in delegated)
    return DelegateCoverage(
        delegate=DELEGATE,
        delegated_ops=len(delegated),
        total_ops=len(original),
        fallback=dict(fallback),
    )
