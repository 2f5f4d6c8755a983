"""Which nodes of an ONNX graph stay fp32 when int8 alone loses accuracy.

Tried in the order of KEEP_FP32 (harness.build.gate): nothing; the stem's first conv (it sees
raw normalised pixels, the widest range of any layer); then also the split-attention path, whose
softmax/sigmoid gates weigh the radix splits and amplify an error in any of them.
"""

from __future__ import annotations

import os

from resnest_bench.harness.build.onnx import load_onnx

_ATTENTION_GATES = ("Softmax", "Sigmoid")
_POOLS = ("ReduceMean", "GlobalAveragePool")
_SHAPE_OPS = ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Split", "Slice")


def kept_fp32(onnx_path: str | os.PathLike[str], keep: str) -> tuple[str, ...]:
    """Node names to leave unquantized for one entry of KEEP_FP32."""
    if keep == "first-conv":
        return first_conv_node(onnx_path)
    if keep == "attention":
        return first_conv_node(onnx_path) + attention_nodes(onnx_path)
    return ()


def first_conv_node(onnx_path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The first Conv in graph order (ONNX nodes are topologically sorted): the stem's."""
    graph = load_onnx(onnx_path).graph
    return next(((n.name,) for n in graph.node if n.op_type == "Conv"), ())


def attention_nodes(onnx_path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Names of the split-attention nodes: each Softmax/Sigmoid gate, the chain feeding it back
    to the global pool (pool, fc1, act, fc2, reshapes) and the reshapes, slices and Muls applying
    it (one Mul per radix split).

    Only data inputs (input 0) are followed, so shape-computing side branches are not swept in.
    """
    graph = load_onnx(onnx_path).graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    chosen: list[str] = []
    for gate in (n for n in graph.node if n.op_type in _ATTENTION_GATES):
        chain = [gate]
        node = gate
        while node.input and node.input[0] in producer and node.op_type not in _POOLS:
            node = producer[node.input[0]]
            chain.append(node)
            if len(chain) > 32:  # not a split-attention block: keep just the gate
                chain = [gate]
                break
        frontier = list(gate.output)
        while frontier:
            for user in consumers.get(frontier.pop(), []):
                if user.op_type in _SHAPE_OPS:
                    chain.append(user)
                    frontier.extend(user.output)
                elif user.op_type == "Mul":
                    chain.append(user)
        chosen.extend(n.name for n in chain if n.name not in chosen)
    return tuple(chosen)
