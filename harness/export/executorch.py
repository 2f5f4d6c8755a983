"""ExecuTorch programs (.pte) of the eval model, lowered to the XNNPACK delegate: fp32, and int8
by PT2E static quantization.

fp32: torch.export at batch 1 -> to_edge_transform_and_lower(XnnpackPartitioner) -> .pte. The
batch is static: a dynamic batch axis lowers, but into 13 delegated subgraphs instead of 4 on
resnest-tiny, and the runtime refuses batches over a bound it picks; larger batches run as
repeated batch-1 calls (harness.runtimes.executorch). int8: XNNPACKQuantizer, symmetric
per-channel weights, calibrated on the same training images in the same preprocessing as ONNX
Runtime's int8, judged by the same held-out gate; when all-int8 loses accuracy, the fewest most
sensitive convs / linears stay fp32 (the quantizer's filter skips them), ranked on the
converted, not yet lowered, graph (harness.export.sensitivity). Each file records what XNNPACK
runs and what falls back.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.export.gate import GateData, artifact_bytes, gate_ladder, int8_record
from resnest_bench.harness.export.sensitivity import Ranking, rank_in_graph, ranked_plans
from resnest_bench.harness.export.static_pools import static_pools
from resnest_bench.harness.results.deployment import ConvertedRecord, DelegateCoverage, Int8Settings
from resnest_bench.harness.runtimes.executorch import ExecuTorchXnnpack

DELEGATE = "XNNPACK"
RANK_BATCH = 32  # the static batch sensitivity ranking's quick variants run at
WEIGHTED_OPS = ("conv", "linear")  # aten ops whose nodes sensitivity ranking may keep fp32


def build_executorch(
    model: nn.Module, fp32_pte: Path, int8_pte: Path, data: GateData
) -> ConvertedRecord:
    """Write the fp32 and the gated int8 .pte; the record names both files and gives each
    one's XNNPACK coverage."""
    from importlib.metadata import version

    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = (torch.from_numpy(data.calibration_x[:1]),)
    model = static_pools(model, example[0])  # the program's shape is fixed: exact, delegated
    coverage = {"executorch_fp32": _lower(torch.export.export(model, example), fp32_pte)}

    score = data.scorer(ExecuTorchXnnpack)

    fp32_top1 = score(fp32_pte)
    graph = torch.export.export(model, example).module()
    calib = torch.from_numpy(data.calibration_x)
    covers: dict[Path, DelegateCoverage] = {}  # per candidate file

    def converted(
        exported: torch.fx.GraphModule,
        images: torch.Tensor,
        keep_fp32: tuple[str, ...],
        batch: int = 1,
    ) -> torch.fx.GraphModule:
        """`exported` (a copy: preparing changes it) quantized, calibrated on `images` in
        batches of its static `batch`."""
        quantizer = _quantizer(lambda node: node.name not in keep_fp32)
        prepared = prepare_pt2e(copy.deepcopy(exported), quantizer)
        with torch.no_grad():
            for chunk in images.split(batch):
                if len(chunk) == batch:
                    prepared(chunk)
        return convert_pt2e(prepared)

    def quantize(keep_fp32: tuple[str, ...], out: Path) -> None:
        quantized = converted(graph, calib, keep_fp32)
        covers[out] = _lower(torch.export.export(quantized, example), out)

    def ranking() -> Ranking:
        """Ranked on quick variants exported at RANK_BATCH (not lowered): the same graph and
        node names as the batch-1 program, 30x fewer calls."""
        quick_x = torch.from_numpy(data.quick_calibration_x)
        batch = min(RANK_BATCH, len(quick_x), len(data.ranking_x))
        wide = torch.export.export(model, (quick_x[:batch],)).module()
        layers = [n.name for n in graph.graph.nodes if _weighted(n)]
        if [n.name for n in wide.graph.nodes if _weighted(n)] != layers:
            raise BenchError(f"the batch-{batch} graph names its layers differently")

        def quick(keep_fp32: tuple[str, ...]) -> Callable[[np.ndarray], np.ndarray]:
            return _batched(converted(wide, quick_x, keep_fp32, batch), batch)

        return rank_in_graph(layers, quick, _batched(wide, batch), data.ranking_x)

    plans = itertools.chain([("pt2e", ())], ranked_plans("pt2e", ranking))
    outcome = gate_ladder(
        int8_pte,
        "pt2e",
        plans,
        quantize,
        score,
        fp32_top1=fp32_top1,
        max_drop_pts=data.max_drop_pts,
    )
    coverage["executorch_int8"] = covers[outcome.path]
    settings = Int8Settings(
        method="PT2E static quantization (XNNPACKQuantizer, ExecuTorch)",
        quant_format="qdq",
        per_channel=True,
        calibration="minmax (symmetric int8)",
        calibration_images=len(calib),
        schemes=[],
        scheme_reason="XNNPACK picks its int8 kernels for the CPU it runs on",
    )
    return ConvertedRecord(
        version=version("executorch"),
        fp32_path=fp32_pte.name,
        fp32_size_bytes=artifact_bytes(fp32_pte),
        fp32_top1=fp32_top1,
        int8=int8_record(outcome, int8_pte, settings, data, fp32_top1),
        coverage=coverage,
    )


def _quantizer(keep: Callable[[torch.fx.Node], bool]):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
    return quantizer.set_filter_function(keep)


def _lower(exported: torch.export.ExportedProgram, pte: Path) -> DelegateCoverage:
    """Lower to XNNPACK, write the program, and count what the delegate took."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    coverage = delegate_coverage(edge.exported_program().graph_module)
    pte.write_bytes(edge.to_executorch().buffer)
    return coverage


def delegate_coverage(graph_module: torch.fx.GraphModule) -> DelegateCoverage:
    """Ops inside XNNPACK's subgraphs vs ops left in the top graph (portable kernels), by op
    name. Tuple unpacking (getitem) is not an op and is not counted."""
    delegated = 0
    fallback: Counter[str] = Counter()
    for node in graph_module.graph.nodes:
        if node.op == "get_attr" and node.name.startswith("lowered_module_"):
            lowered = getattr(graph_module, node.target)
            delegated += sum(1 for n in lowered.original_module.graph.nodes if _is_op(n))
        elif _is_op(node) and "executorch_call_delegate" not in _op_name(node):
            fallback[_op_name(node)] += 1
    return DelegateCoverage(
        delegate=DELEGATE,
        delegated_ops=delegated,
        total_ops=delegated + sum(fallback.values()),
        fallback=dict(fallback),
    )


def _is_op(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target.__name__ != "getitem"


def _op_name(node: torch.fx.Node) -> str:
    """The op's schema name: "aten::avg_pool2d" -> "avg_pool2d"; other namespaces keep theirs."""
    schema = getattr(node.target, "_schema", None)
    name = schema.name if schema is not None else getattr(node.target, "__name__", str(node.target))
    namespace, _, op = name.rpartition("::")
    return op if namespace in ("aten", "") else f"{namespace}.{op}"


def _weighted(node: torch.fx.Node) -> bool:
    """A conv or linear call in the exported graph: what the quantizer gives int8 weights."""
    return node.op == "call_function" and any(op in str(node.target) for op in WEIGHTED_OPS)


def _batched(module: torch.fx.GraphModule, batch: int) -> Callable[[np.ndarray], np.ndarray]:
    """batch -> logits through a graph exported at a static `batch`, the last chunk padded."""

    def run(x: np.ndarray) -> np.ndarray:
        outs = []
        with torch.no_grad():
            for chunk in torch.from_numpy(x).split(batch):
                padded = torch.cat([chunk, chunk[:1].expand(batch - len(chunk), *chunk.shape[1:])])
                outs.append(module(padded)[: len(chunk)])
        return torch.cat(outs).numpy()

    return run
