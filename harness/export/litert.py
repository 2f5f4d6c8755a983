"""LiteRT .tflite files of the eval model: fp32 by litert-torch, int8 by ai-edge-quantizer.

fp32 is converted from the PyTorch model itself (litert-torch keeps PyTorch's NCHW input and
moves to NHWC inside the graph with transposes) at a static batch of 1, and must reproduce
PyTorch on real test images like the ONNX export. int8 is full-integer static quantization of
that file (int8 weights per channel, int8 activations, min/max ranges) calibrated on the same
training images in the model's own preprocessing, with a float32 input and output, so the
harness feeds it the same batches. Softmax and average pooling stay fp32: XNNPACK has no int8
kernel for them in LiteRT, and quantizing them would push them out of the delegate. The same
held-out accuracy gate as ONNX Runtime's int8 picks the file that ships; when all-int8 loses
accuracy, the fewest most sensitive weighted ops stay fp32 (per-op NO_QUANTIZE overrides),
ranked in the .tflite graph itself (harness.export.sensitivity).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import itertools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.export.files import temp_file
from resnest_bench.harness.export.gate import (
    GateData,
    artifact_bytes,
    gate_ladder,
    int8_record,
    minmax_only,
)
from resnest_bench.harness.export.int8 import quiet
from resnest_bench.harness.export.onnx import compare_logits, parity_problem
from resnest_bench.harness.export.sensitivity import rank_in_graph, ranked_plans
from resnest_bench.harness.results.deployment import ConvertedRecord, Int8Settings, Parity
from resnest_bench.harness.runtimes.litert import LiteRt, batching, xnnpack_coverage

# Ops XNNPACK runs only in fp32 inside LiteRT: quantized, they would fall back to reference kernels.
FLOAT_ONLY_OPS = ("SOFTMAX", "AVERAGE_POOL_2D")
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # rankable layers
_BOUNDS = ("min", "max")  # a tensor's calibrated range


def converter_missing() -> str | None:
    """Why .tflite files cannot be built here (one line, with what to do), or None."""
    for module, package in (("litert_torch", "litert-torch"), ("ai_edge_quantizer", "")):
        if importlib.util.find_spec(module) is None:
            name = package or module.replace("_", "-")
            return f"{name} is not installed: pip install 'resnest-bench[litert-convert]'"
    return LiteRt.unavailable_reason()


def build_litert(
    model: nn.Module,
    images: torch.Tensor,
    fp32_path: Path,
    int8_path: Path,
    data: GateData,
    *,
    atol: float,
    rtol: float = 1e-5,
) -> ConvertedRecord:
    """Write the fp32 .tflite (checked against PyTorch on `images`, normalised test images)
    and the gated int8 one; BenchError when the fp32 file does not reproduce PyTorch."""
    model = model.eval().cpu()
    with temp_file(fp32_path) as tmp:
        _convert(model, images[:1], tmp)
        parity = _parity(model, tmp, images, data.threads)
        problem = parity_problem(parity, atol=atol, rtol=rtol, min_agreement=0.99)
        if problem is not None:
            raise BenchError(f"LiteRT conversion does not match PyTorch: {problem}")
        os.replace(tmp, fp32_path)

    score = data.scorer(LiteRt)

    fp32_top1 = score(fp32_path)
    quick_file = int8_path.with_name(f".quick.{int8_path.name}")

    def quick(kept: tuple[str, ...]):
        _quantize(fp32_path, quick_file, data.quick_calibration_x, kept)
        return _loaded(quick_file, data.threads)

    def ranking():
        try:
            layers = weighted_layers(fp32_path)
            return rank_in_graph(layers, quick, _loaded(fp32_path, data.threads), data.ranking_x)
        finally:
            quick_file.unlink(missing_ok=True)

    outcome = gate_ladder(
        int8_path,
        "static-int8",
        itertools.chain([("static-int8", ())], ranked_plans("static-int8", ranking)),
        lambda kept, out: _quantize(fp32_path, out, data.calibration_x, kept),
        score,
        fp32_top1=fp32_top1,
        max_drop_pts=data.max_drop_pts,
    )
    settings = Int8Settings(
        method="ai-edge-quantizer static int8 (LiteRT)",
        quant_format="tflite int8, float32 input and output",
        per_channel=True,
        calibration=minmax_only(data.calibration_method, "ai-edge-quantizer's static int8"),
        calibration_images=len(data.calibration_x),
        schemes=[],
        scheme_reason="XNNPACK picks its int8 kernels for the CPU it runs on",
    )
    return ConvertedRecord(
        version=importlib.metadata.version("ai-edge-litert"),
        fp32_path=fp32_path.name,
        fp32_size_bytes=artifact_bytes(fp32_path),
        fp32_top1=fp32_top1,
        int8=int8_record(outcome, int8_path, settings, data, fp32_top1),
        coverage={
            "litert_fp32": xnnpack_coverage(fp32_path, data.threads or 1),
            "litert_int8": xnnpack_coverage(int8_path, data.threads or 1),
        },
        parity=parity,
        batching=batching(fp32_path),
    )


def _convert(model: nn.Module, sample: torch.Tensor, out: Path) -> None:
    import litert_torch

    with quiet(), contextlib.redirect_stderr(io.StringIO()):
        litert_torch.convert(model, (sample,)).export(str(out))


def _parity(model: nn.Module, path: Path, images: torch.Tensor, threads: int | None) -> Parity:
    runtime = LiteRt(threads=threads)
    runtime.load(path)
    with torch.inference_mode():
        expected = model(images).numpy()
    return compare_logits(expected, runtime.run(images.numpy()))


def weighted_layers(path: Path) -> list[str]:
    """The weighted ops (conv / linear) of a .tflite graph in graph order, each named by its
    first output tensor: the scope a per-op quantization override matches."""
    ops, names = _graph(path)
    return [names[int(op["outputs"][0])] for op in ops if op["op_name"] in WEIGHTED_OPS]


def _loaded(path: Path, threads: int | None):
    runtime = LiteRt(threads=threads)
    runtime.load(path)
    return runtime.run


def _graph(path: Path) -> tuple[list[dict], dict[int, str]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    return interpreter._get_ops_details(), names


def _quantize(source: Path, out: Path, images: np.ndarray, kept: tuple[str, ...]) -> None:
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName as Op

    (signature, io_names), *_ = Interpreter(model_path=str(source)).get_signature_list().items()
    engine = quantizer.Quantizer(str(source))
    engine.load_quantization_recipe(recipe.static_wi8_ai8())
    # Later entries win: float input/output, float-only ops, then the gate's fp32 islands.
    for op in (Op.INPUT, Op.OUTPUT, *(Op(name) for name in FLOAT_ONLY_OPS)):
        engine.update_quantization_recipe(".*", op, algorithm_key=AlgorithmName.NO_QUANTIZE)
    if kept:
        # An op's scope is its output names, each followed by ";" ("a;b;").
        pattern = "(^|;)(" + "|".join(re.escape(name) for name in kept) + ");"
        engine.update_quantization_recipe(
            pattern, Op.ALL_SUPPORTED, algorithm_key=AlgorithmName.NO_QUANTIZE
        )
    batches = [{io_names["inputs"][0]: images[i : i + 1]} for i in range(len(images))]
    with quiet(), contextlib.redirect_stderr(io.StringIO()):
        result = engine.quantize(_ranges(source, engine, {signature: batches}))
        result.export_model(str(out), overwrite=True)


def _ranges(source: Path, engine: Any, data: dict[str, list[dict[str, np.ndarray]]]) -> dict:
    """Each tensor's min and max over every calibration image. Quantizer.calibrate() keeps a
    moving average of per-image ranges instead (smoothing 0.95): on 256 single images it clips
    what only a few images reach, which cost 7.5 points of top-1 on ResNeSt-50 (digits), where
    true ranges lose none. The profiler-based calibrator tracks them in C++, 4x faster."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(engine.get_quantization_recipe())
    calibration = calibrator.Calibrator(
        str(source),
        mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED,
        qsv_update_func=qsv_utils.min_max_update,
    )
    calibration.calibrate(data, manager)
    return _finite_ranges(source, calibration.get_model_qsvs())


def _finite_ranges(source: Path, qsvs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ranges with every infinite bound replaced by its producer's input's bound. The
    profiler sees what a max pool's PADV2 pads with (-inf), and an infinite range becomes an
    infinite scale that XNNPACK refuses to load; a max never picks the pad, so the pad's range
    is its input's (as the quantizer's own Python calibrator has it)."""
    ops, names = _graph(source)
    producer_input = {
        names[int(t)]: names[int(op["inputs"][0])] for op in ops for t in op["outputs"]
    }
    fixed = dict(qsvs)
    for name, qsv in qsvs.items():
        if all(np.isfinite(qsv[b]).all() for b in _BOUNDS):
            continue
        upstream = qsvs.get(producer_input.get(name, ""), {})
        bounds = {
            b: np.where(np.isfinite(qsv[b]), qsv[b], upstream.get(b, np.nan)) for b in _BOUNDS
        }
        if not all(np.isfinite(bounds[b]).all() for b in _BOUNDS):
            raise BenchError(f"LiteRT int8 calibration: tensor {name!r} has an unbounded range")
        fixed[name] = {**qsv, **bounds}
    return fixed
