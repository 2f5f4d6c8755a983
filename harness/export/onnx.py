"""The ONNX artifact: export with a dynamic batch axis, then prove it computes what PyTorch does.

The graph is checked against PyTorch on real, normalised test images before it is published; a
mismatch raises BenchError instead of shipping a wrong model. The file appears under its final
name only once it passed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from resnest_bench.harness.errors import BenchError, one_line
from resnest_bench.harness.export.files import temp_file
from resnest_bench.harness.results.deployment import ExportRecord, Parity
from resnest_bench.harness.runtimes.ort import OrtCpu

Exporter = Literal["auto", "dynamo", "torchscript"]
# What "auto" tries, in order: dynamo (torch's current exporter), then TorchScript (older, but
# it handles more models).
AUTO_ORDER: tuple[str, ...] = ("dynamo", "torchscript")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
TORCHSCRIPT_OPSET = 17  # the newest opset the TorchScript exporter handles in every torch >= 2.7


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    images: torch.Tensor,
    *,
    atol: float,
    rtol: float = 1e-5,
    min_agreement: float = 0.99,
    exporter: Exporter = "auto",
    threads: int | None = None,
) -> ExportRecord:
    """Export `model` to ONNX at `path` (dynamic batch) and check it on `images`; the record
    names the file (path is its name), since it describes a folder of artifacts.

    `images` are real test images already normalised with harness.data.normalize (the model's
    own preprocessing), float32 NCHW. "auto" tries AUTO_ORDER, moving on when an exporter fails
    to export or to match; the file is only renamed into place after it passes the check:
    max |logit diff| <= atol + rtol * max |logit| (fp32 rounding grows with the logits' scale)
    and top-1 agreement >= min_agreement.
    """
    if exporter not in ("auto", *AUTO_ORDER):
        raise BenchError(f"unknown ONNX exporter {exporter!r}; choose auto, dynamo or torchscript")
    if images.ndim != 4 or images.dtype != torch.float32 or len(images) == 0:
        raise BenchError(f"export check needs float32 NCHW images, got {tuple(images.shape)}")
    model = model.eval().cpu()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    order = AUTO_ORDER if exporter == "auto" else (exporter,)
    failures: list[str] = []
    for name in order:
        with temp_file(target) as tmp:
            try:
                # Batch 2, not 1: torch.export specialises size-1 dimensions to constants.
                _run_exporter(name, model, images[:2], tmp)
            except Exception as exc:
                failures.append(f"{name} exporter failed: {one_line(exc)}")
                continue
            try:
                parity = check_parity(model, tmp, images, threads=threads)
            except BenchError as exc:  # e.g. a batch axis the exporter made static
                failures.append(f"{name} export does not run: {exc}")
                continue
            problem = parity_problem(parity, atol=atol, rtol=rtol, min_agreement=min_agreement)
            if problem is not None:
                failures.append(f"{name} export does not match PyTorch: {problem}")
                continue
            opset = _default_opset(tmp)
            os.replace(tmp, target)
        return ExportRecord(
            path=target.name,
            exporter=name,
            opset=opset,
            size_bytes=target.stat().st_size,
            parity=parity,
            fallback_reason="; ".join(failures) or None,
        )
    raise BenchError(f"ONNX export of {target.name} failed: " + "; ".join(failures))


def check_parity(
    model: nn.Module,
    onnx_path: str | os.PathLike[str],
    images: torch.Tensor,
    *,
    threads: int | None = None,
) -> Parity:
    """Run PyTorch and ONNX Runtime (CPU) on the same images; batch 1 first, then batches of 32.

    Mixing batch sizes also proves the batch axis really is dynamic.
    """
    runtime = OrtCpu(threads=threads)
    runtime.load(onnx_path)
    with torch.inference_mode():
        expected = model.eval()(images).numpy()
    chunks = [images[:1], *torch.split(images[1:], 32)] if len(images) > 1 else [images]
    got = np.concatenate([runtime.run(chunk.numpy()) for chunk in chunks])
    return compare_logits(expected, got)


def compare_logits(reference: np.ndarray, other: np.ndarray) -> Parity:
    """Max |difference| and top-1 agreement between two (N, classes) logit arrays."""
    if reference.shape != other.shape:
        raise BenchError(f"logit shapes differ: {reference.shape} vs {other.shape}")
    return Parity(
        images=int(reference.shape[0]),
        max_abs_diff=float(np.max(np.abs(reference - other))),
        reference_absmax=float(np.max(np.abs(reference))),
        top1_agreement=float(np.mean(reference.argmax(1) == other.argmax(1))),
    )


def parity_problem(
    parity: Parity, *, atol: float, rtol: float = 0.0, min_agreement: float = 1.0
) -> str | None:
    """A one-line description of why `parity` fails the tolerances, or None if it passes."""
    limit = atol + rtol * parity.reference_absmax
    if not np.isfinite(parity.max_abs_diff) or parity.max_abs_diff > limit:
        return f"max |logit diff| {parity.max_abs_diff:.3g} > {limit:.3g}"
    if parity.top1_agreement < min_agreement:
        return f"top-1 agreement {parity.top1_agreement:.2%} < {min_agreement:.2%}"
    return None


def load_onnx(path: str | os.PathLike[str]):
    """onnx.load with a BenchError for a missing, corrupt or invalid file."""
    import onnx

    file = Path(path)
    if not file.is_file():
        raise BenchError(f"ONNX model not found: {file} (run the export step first)")
    try:
        proto = onnx.load(str(file))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise BenchError(
            f"ONNX model {file} is corrupt or invalid ({one_line(exc)}); re-export"
        ) from None
    return proto


def check_input_fits(path: str | os.PathLike[str], image_shape: tuple[int, ...]) -> None:
    """Raise BenchError unless the graph's one input takes (N, C, H, W) batches of image_shape."""
    proto = load_onnx(path)
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise BenchError(f"{path} has {len(inputs)} inputs; a classifier takes one image batch")
    dims = [
        d.dim_value if d.HasField("dim_value") else None
        for d in inputs[0].type.tensor_type.shape.dim
    ]
    want = [None, *image_shape]
    fits = len(dims) == 4 and all(
        d is None or d == w for d, w in zip(dims[1:], want[1:], strict=True)
    )
    if not fits:
        shown = ["N" if d is None else str(d) for d in dims]
        raise BenchError(
            f"{path} expects input [{', '.join(shown)}] but the data is "
            f"{'x'.join(map(str, image_shape))}: export the model at the data's image size"
        )


def _run_exporter(name: str, model: nn.Module, example: torch.Tensor, out: Path) -> None:
    """One exporter call, quietly (both exporters print progress and deprecation warnings;
    the dynamo one also logs that torchvision's detection ops are not installed)."""
    noise = io.StringIO()
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    with (
        _log_level(registry_log, logging.ERROR),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(noise),
        torch.inference_mode(False),
        torch.no_grad(),
    ):
        warnings.simplefilter("ignore")
        if name == "dynamo":
            torch.onnx.export(
                model,
                (example,),
                str(out),
                dynamo=True,
                external_data=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
        else:
            torch.onnx.export(
                model,
                (example,),
                str(out),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=TORCHSCRIPT_OPSET,
            )


@contextlib.contextmanager
def _log_level(logger: logging.Logger, level: int) -> Iterator[None]:
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _default_opset(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx"))
