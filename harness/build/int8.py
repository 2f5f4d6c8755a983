"""int8 post-training static quantization with ONNX Runtime, guarded by a held-out accuracy check.

Calibration sees real training images through harness.data.normalize, the model's own
preprocessing: calibrating on anything else (random tensors, unscaled pixels) gives ranges that
do not match inference and a broken model (the seed study's lesson). Convolutions get per-channel
int8 weights and static activation ranges in QDQ form; dynamic quantization is never used (it
leaves convolutions in fp32 and adds run-time range computation).

If int8 top-1 on held-out images falls more than `max_drop_pts` below fp32, the split-attention
path (the Softmax/Sigmoid gates and the ops feeding and applying them) is kept in fp32 and the
model is quantized again; the result says which variant shipped, or BenchError if none passes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from resnest_bench.harness.build.onnx import load_onnx
from resnest_bench.harness.data import ImageSet, normalize
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.results.deployment import Int8Attempt, Int8Record, Int8Settings
from resnest_bench.harness.runtimes.ort import OrtCpu

Triple = tuple[float, float, float]
VARIANTS: tuple[str, ...] = ("full", "attention-fp32")
_ATTENTION_GATES = ("Softmax", "Sigmoid")
_POOLS = ("ReduceMean", "GlobalAveragePool")
_SHAPE_OPS = ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Split", "Slice")
_FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
_ACTIVATION_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
_CALIBRATORS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


@dataclass(frozen=True)
class Int8Scheme:
    """How ORT static quantization is asked to work (weights: always symmetric int8).

    activations "uint8" with int8 weights is ORT's U8S8 path, the fast one on x86 (VNNI);
    reduce_range (7-bit weights) only helps CPUs without VNNI, where U8S8 can saturate.
    """

    activations: Literal["uint8", "int8"] = "uint8"
    per_channel: bool = True
    reduce_range: bool = False
    activation_symmetric: bool = False
    quant_format: Literal["qdq", "qoperator"] = "qdq"
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"
    calibration_batch: int = 32


SCHEME = Int8Scheme()


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
    strict: bool = False,
    scheme: Int8Scheme = SCHEME,
    variants: Sequence[str] = VARIANTS,
    threads: int | None = None,
    seed: int = 0,
) -> Int8Record:
    """Quantize `onnx_fp32` to `out_path`, trying `variants` in order until one keeps accuracy;
    the record names the file (path is its name).

    `calibration` should be training images (a class-balanced subset of
    `calibration_images` is drawn with `seed`); `heldout` must not overlap them.
    When no variant stays within `max_drop_pts`, the one that lost least ships with
    within_limit=False, so the report shows the loss instead of the run ending without one;
    strict=True makes that a BenchError with nothing written instead.
    """
    from resnest_bench.harness.data.split import stratified_subset

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise BenchError(f"unknown int8 variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    if len(heldout) == 0:
        raise BenchError("int8 accuracy check needs at least one held-out image")
    load_onnx(onnx_fp32)  # fail early, with a clear message, on a missing or corrupt model
    target = Path(out_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    calib = stratified_subset(calibration, calibration_images, seed)
    heldout_x = normalize(heldout.images, mean, std).numpy()
    heldout_y = heldout.labels.numpy()
    fp32_top1 = top1_percent(_ort_logits(onnx_fp32, heldout_x, threads), heldout_y)

    attempts: list[Int8Attempt] = []
    excluded_by_variant: dict[str, tuple[str, ...]] = {}
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        _pre_process(Path(onnx_fp32), prepared)
        for variant in variants:
            excluded = attention_nodes(prepared) if variant == "attention-fp32" else ()
            excluded_by_variant[variant] = excluded
            candidate = Path(work) / f"{variant}.onnx"
            reader_images = normalize(calib.images, mean, std).numpy()
            _quantize(prepared, candidate, reader_images, scheme, excluded)
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
        best = next((a for a in attempts if a.accepted), None)
        if best is None:
            tried = ", ".join(
                f"{a.variant} {a.top1:.2f}% (-{a.drop_pts:.2f} pts)" for a in attempts
            )
            if strict:
                raise BenchError(
                    f"int8 model loses more than {max_drop_pts} pts of top-1 (fp32 "
                    f"{fp32_top1:.2f}%; tried {tried}); raise the allowed drop or deploy fp32"
                )
            best = min(attempts, key=lambda a: a.drop_pts)
        os.replace(Path(work) / f"{best.variant}.onnx", target)
    return Int8Record(
        path=target.name,
        size_bytes=target.stat().st_size,
        variant=best.variant,
        settings=Int8Settings(**asdict(scheme), calibration_images=len(calib)),
        fp32_top1=fp32_top1,
        int8_top1=best.top1,
        drop_pts=best.drop_pts,
        max_drop_pts=max_drop_pts,
        within_limit=best.accepted,
        heldout_images=len(heldout),
        calibration_images=len(calib),
        excluded_nodes=list(excluded_by_variant[best.variant]),
        attempts=attempts,
    )


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
            _Reader(input_name, images, scheme.calibration_batch),
            quant_format=_FORMATS[scheme.quant_format],
            per_channel=scheme.per_channel,
            reduce_range=scheme.reduce_range,
            activation_type=_ACTIVATION_TYPES[scheme.activations],
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(excluded),
            calibrate_method=_CALIBRATORS[scheme.calibration],
            extra_options={"ActivationSymmetric": scheme.activation_symmetric},
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
