"""int8 post-training static quantization with ONNX Runtime, guarded by a held-out accuracy check.

Calibration sees real training images through harness.data.normalize, the model's own
preprocessing: calibrating on anything else (random tensors, unscaled pixels) gives ranges that
do not match inference and a broken model (the seed study's lesson). Convolutions get per-channel
int8 weights and static activation ranges in QDQ form; dynamic quantization is never used (it
leaves convolutions in fp32 and adds run-time range computation).

The scheme (u8s8, 7-bit weights, u8u8) follows the CPU (int8_schemes). If int8 top-1 on
held-out images falls more than `max_drop_pts` below fp32, the gate tries the CPU's other
schemes, then keeps the stem's first conv in fp32, then also the split-attention path (the
Softmax/Sigmoid gates and the ops feeding and applying them); every attempt is recorded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from resnest_bench.harness.build.fp32_nodes import KEEP_FP32, kept_fp32
from resnest_bench.harness.build.int8_schemes import schemes_for_this_cpu
from resnest_bench.harness.build.onnx import load_onnx
from resnest_bench.harness.data import ImageSet, normalize
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.results.deployment import (
    Int8Attempt,
    Int8Record,
    Int8Scheme,
    Int8Settings,
)
from resnest_bench.harness.runtimes.ort import OrtCpu

Triple = tuple[float, float, float]
QUANT_FORMAT = "qdq"  # Q/DQ pairs around fp32 ops: every runtime's optimiser fuses them
PER_CHANNEL = True
CALIBRATION = "minmax"
CALIBRATION_BATCH = 32
_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}


def quantize_int8(
    onnx_fp32: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    calibration: ImageSet,
    calibration_images: int,
    heldout: ImageSet,
    mean: Triple,
    std: Triple,
    max_drop_pts: float,
    allow_loss: bool = False,
    schemes: tuple[list[Int8Scheme], str] | None = None,
    keep_fp32: Sequence[str] = KEEP_FP32,
    threads: int | None = None,
    seed: int = 0,
) -> Int8Record:
    """Quantize `onnx_fp32` to `out_path`, trying each fp32 exclusion with each scheme (this
    CPU's, from int8_schemes, unless given) until one keeps accuracy; the record names the file.

    `calibration` should be training images (a class-balanced subset of
    `calibration_images` is drawn with `seed`); `heldout` must not overlap them. When no variant
    stays within `max_drop_pts`, the least lossy one is written and recorded with
    within_limit=False, so its figures are measured and reported; it counts as shipped only
    with allow_loss (the pipeline ends a run non-zero otherwise).
    """
    from resnest_bench.harness.data.split import stratified_subset

    unknown = [k for k in keep_fp32 if k not in KEEP_FP32]
    if unknown or not keep_fp32:
        raise BenchError(f"unknown int8 exclusion(s) {unknown}; choose from {', '.join(KEEP_FP32)}")
    if len(heldout) == 0:
        raise BenchError("int8 accuracy check needs at least one held-out image")
    offered, reason = schemes or schemes_for_this_cpu()
    load_onnx(onnx_fp32)  # fail early, with a clear message, on a missing or corrupt model
    target = Path(out_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    calib = stratified_subset(calibration, calibration_images, seed)
    calib_x = normalize(calib.images, mean, std).numpy()
    heldout_x = normalize(heldout.images, mean, std).numpy()
    heldout_y = heldout.labels.numpy()
    fp32_top1 = top1_percent(_ort_logits(onnx_fp32, heldout_x, threads), heldout_y)

    attempts: list[Int8Attempt] = []
    excluded_by_variant: dict[str, tuple[str, ...]] = {}
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        _pre_process(Path(onnx_fp32), prepared)
        for keep, scheme in ((k, s) for k in keep_fp32 for s in offered):
            variant = scheme.name if keep == "none" else f"{scheme.name}+{keep}-fp32"
            excluded = kept_fp32(prepared, keep)
            excluded_by_variant[variant] = excluded
            candidate = Path(work) / f"{variant}.onnx"
            _quantize(prepared, candidate, calib_x, scheme, excluded)
            _compact(candidate)
            top1 = top1_percent(_ort_logits(candidate, heldout_x, threads), heldout_y)
            drop = fp32_top1 - top1
            accepted = drop <= max_drop_pts
            attempts.append(
                Int8Attempt(
                    variant=variant,
                    excluded_nodes=len(excluded),
                    top1=top1,
                    drop_pts=drop,
                    accepted=accepted,
                )
            )
            if accepted:
                break
        best = next((a for a in attempts if a.accepted), None) or min(
            attempts, key=lambda a: a.drop_pts
        )
        os.replace(Path(work) / f"{best.variant}.onnx", target)
    return Int8Record(
        path=target.name,
        size_bytes=target.stat().st_size,
        variant=best.variant,
        settings=Int8Settings(
            quant_format=QUANT_FORMAT,
            per_channel=PER_CHANNEL,
            calibration=CALIBRATION,
            calibration_images=len(calib),
            schemes=offered,
            scheme_reason=reason,
        ),
        fp32_top1=fp32_top1,
        int8_top1=best.top1,
        drop_pts=best.drop_pts,
        max_drop_pts=max_drop_pts,
        within_limit=best.accepted,
        allowed_loss=allow_loss and not best.accepted,
        heldout_images=len(heldout),
        calibration_images=len(calib),
        excluded_nodes=list(excluded_by_variant[best.variant]),
        attempts=attempts,
    )


def top1_percent(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(np.mean(logits.argmax(1) == labels) * 100.0)


# ---------------------------------------------------------------------------------------------


def _ort_logits(
    path: str | os.PathLike[str], images: np.ndarray, threads: int | None
) -> np.ndarray:
    runtime = OrtCpu(threads=threads)
    runtime.load(path)
    return np.concatenate([runtime.run(images[i : i + 64]) for i in range(0, len(images), 64)])


def _pre_process(source: Path, out: Path) -> None:
    """ORT's recommended first step: symbolic shape inference + graph clean-up; names nodes."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet():
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
    scheme: Int8Scheme,
    excluded: Sequence[str],
) -> None:
    import onnx

    input_name = onnx.load(str(source), load_external_data=False).graph.input[0].name
    with _quiet():
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
            calibrate_method=CalibrationMethod.MinMax,
        )


@contextlib.contextmanager
def _quiet():
    """ORT's quantization tools print and log progress; keep the benchmark's output clean."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
