"""int8 post-training static quantization with ONNX Runtime, guarded by a held-out accuracy check.

Calibration sees real training images through harness.data.normalize, the model's own
preprocessing: calibrating on anything else (random tensors, unscaled pixels) gives ranges that
do not match inference and a broken model (the seed study's lesson). Convolutions get per-channel
int8 weights and static activation ranges in QDQ form; dynamic quantization is never used (it
leaves convolutions in fp32 and adds run-time range computation).

The scheme (u8s8, 7-bit weights, u8u8) follows the CPU (int8_schemes). If int8 top-1 on
held-out images falls more than `max_drop_pts` below fp32, the gate tries the CPU's other
schemes, then keeps the fewest most sensitive layers fp32 (harness.export.sensitivity, ranked
with ORT's own nodes_to_exclude, in the first scheme); every attempt is recorded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from resnest_bench.harness.export.gate import GateData, Plan, int8_record, planned, run_gate
from resnest_bench.harness.export.int8_schemes import schemes_for_this_cpu
from resnest_bench.harness.export.onnx import load_onnx
from resnest_bench.harness.export.sensitivity import rank_in_graph, ranked_plans
from resnest_bench.harness.results.deployment import Int8Record, Int8Scheme, Int8Settings
from resnest_bench.harness.runtimes.ort import OrtCpu

Triple = tuple[float, float, float]
QUANT_FORMAT = "qdq"  # Q/DQ pairs around fp32 ops: every runtime's optimiser fuses them
PER_CHANNEL = True
# How activation ranges are drawn from the calibration images (DeploySection.calibration_method).
_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
CALIBRATION_BATCH = 32
_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")  # the layers sensitivity ranking may keep fp32


def quantize_int8(
    onnx_fp32: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    data: GateData,
    *,
    schemes: tuple[list[Int8Scheme], str] | None = None,
    mixed_precision: bool = True,
) -> Int8Record:
    """Quantize `onnx_fp32` to `out_path`, trying each scheme (this CPU's, from int8_schemes,
    unless given), then (mixed_precision) the sensitivity-ranked variants, until one keeps
    accuracy on `data`'s held-out images; the record names the file. When no variant stays
    within the limit, the least lossy one is written and recorded with within_limit=False, so
    its figures are measured and reported; it counts as shipped only with data.allow_loss
    (else the run ends with exit 3).
    """
    offered, reason = schemes or schemes_for_this_cpu()
    load_onnx(onnx_fp32)  # fail early, with a clear message, on a missing or corrupt model
    target = Path(out_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fp32_top1 = data.top1(_ort_session(onnx_fp32, data.threads))
    scheme_of = {scheme.name: scheme for scheme in offered}

    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        prepare_onnx(Path(onnx_fp32), prepared)

        def quantize(kept: tuple[str, ...], out: Path) -> None:
            scheme = scheme_of[out.stem.split("+")[0]]
            _quantize(prepared, out, data.calibration_x, data.calibration_method, scheme, kept)
            _compact(out)

        def plans() -> Iterator[Plan]:
            yield from ((scheme.name, ()) for scheme in offered)
            if mixed_precision:
                yield from ranked_plans(
                    offered[0].name, lambda: _ranking(prepared, Path(work), data, offered[0])
                )

        outcome = run_gate(
            planned(plans(), Path(work), ".onnx", quantize),
            lambda path: data.top1(_ort_session(path, data.threads)),
            fp32_top1=fp32_top1,
            max_drop_pts=data.max_drop_pts,
        )
        os.replace(outcome.path, target)
    settings = Int8Settings(
        method="ONNX Runtime static quantization",
        quant_format=QUANT_FORMAT,
        per_channel=PER_CHANNEL,
        calibration=data.calibration_method,
        calibration_images=len(data.calibration_x),
        schemes=offered,
        scheme_reason=reason,
    )
    return int8_record(outcome, target, settings, data, fp32_top1)


def _ranking(prepared: Path, work: Path, data: GateData, scheme: Int8Scheme):
    """The weighted nodes of `prepared`, most sensitive first, ranked with quick variants
    (fewer calibration images) that ORT builds with nodes_to_exclude."""
    layers = [n.name for n in load_onnx(prepared).graph.node if n.op_type in WEIGHTED_OPS]
    quick_file = work / "quick.onnx"

    def quick(kept: tuple[str, ...]) -> Callable:
        _quantize(prepared, quick_file, data.quick_calibration_x, "minmax", scheme, kept)
        return _ort_session(quick_file, data.threads)

    return rank_in_graph(layers, quick, _ort_session(prepared, data.threads), data.ranking_x)


def _ort_session(path: str | os.PathLike[str], threads: int | None) -> Callable:
    """batch -> logits through an ONNX Runtime CPU session on `path`."""
    runtime = OrtCpu(threads=threads)
    runtime.load(path)
    return runtime.run


def prepare_onnx(source: Path, out: Path) -> None:
    """ORT's recommended first step: symbolic shape inference + graph clean-up; names nodes."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with quiet():
        try:
            quant_pre_process(str(source), str(out))
        except Exception:  # symbolic inference cannot follow computed Reshape shapes (TorchScript)
            quant_pre_process(str(source), str(out), skip_symbolic_shape=True)
    proto = onnx.load(str(out))
    seen: set[str] = set()
    for index, node in enumerate(proto.graph.node):  # nodes_to_exclude matches by name
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{index}"
        seen.add(node.name)
    onnx.save(proto, str(out))


def _compact(path: Path) -> None:
    """Drop what inference never reads: exporter stack traces on nodes and shape annotations.

    Worth ~1.5% of ResNeSt-50's int8 file, the margin to a quarter of the fp32 state_dict.
    """
    import onnx

    proto = onnx.load(str(path))
    for node in proto.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    del proto.graph.value_info[:]
    onnx.save(proto, str(path))


class _Reader(CalibrationDataReader):
    """CalibrationDataReader over normalised images, in fixed-size batches (dynamic batch axis)."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int) -> None:
        self._batches = iter(
            [{input_name: images[i : i + batch]} for i in range(0, len(images), batch)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _quantize(
    source: Path,
    out: Path,
    images: np.ndarray,
    method: str,
    scheme: Int8Scheme,
    excluded: Sequence[str],
) -> None:
    import onnx

    input_name = onnx.load(str(source), load_external_data=False).graph.input[0].name
    with quiet():
        quantize_static(
            str(source),
            str(out),
            _Reader(input_name, images, CALIBRATION_BATCH),
            quant_format=QuantFormat.QDQ,
            per_channel=PER_CHANNEL,
            reduce_range=scheme.reduce_range,
            activation_type=_TYPES[scheme.activations],
            weight_type=_TYPES[scheme.weights],
            nodes_to_exclude=list(excluded),
            calibrate_method=_METHODS[method],
        )


@contextlib.contextmanager
def quiet():
    """ORT's quantization tools print and log progress; keep the benchmark's output clean."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
