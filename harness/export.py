"""Turn a trained model into deployable files and prove each one still computes the same thing.

Artifacts: a self-describing PyTorch state_dict file (config + weights, loadable with
weights_only=True) and an ONNX graph with a dynamic batch axis. The ONNX file is checked against
PyTorch on real, normalised test images before it is published; a mismatch raises BenchError
instead of shipping a wrong model. Every file appears under its final name only once complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from resnest_bench.harness.atomic import atomic_torch_save
from resnest_bench.harness.errors import BenchError

Exporter = Literal["auto", "dynamo", "torchscript"]
EXPORTERS: tuple[str, ...] = ("auto", "dynamo", "torchscript")
TORCH_ARTIFACT_FORMAT = "resnest-bench/state_dict/v1"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
TORCHSCRIPT_OPSET = 17  # the newest opset the TorchScript exporter handles in every torch >= 2.7


# ---------------------------------------------------------------------------------------------
# PyTorch artifact: config + state_dict in one file, so a fresh process can rebuild the model.


def save_torch_artifact(model: nn.Module, path: str | os.PathLike[str]) -> int:
    """Write {format, config, state_dict} atomically; returns the file size in bytes."""
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise BenchError("only models built by models.create_model can be saved for deployment")
    payload = {
        "format": TORCH_ARTIFACT_FORMAT,
        "config": dataclasses.asdict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_torch_save(payload, path)
    return Path(path).stat().st_size


def load_torch_artifact(path: str | os.PathLike[str]) -> nn.Module:
    """Rebuild the eval-mode model from a save_torch_artifact file; bad files raise BenchError."""
    from resnest_bench import models
    from resnest_bench.models.weights import load_file

    file = Path(path)
    if not file.is_file():
        raise BenchError(f"model file not found: {file} (run the export step first)")
    try:
        payload = load_file(file)
    except models.ModelError as exc:
        raise BenchError(str(exc)) from None
    if not isinstance(payload, dict) or payload.get("format") != TORCH_ARTIFACT_FORMAT:
        raise BenchError(
            f"{file} is not a deployment model file (expected format {TORCH_ARTIFACT_FORMAT}); "
            "write it with harness.export.save_torch_artifact"
        )
    try:
        model = models.ResNeSt(models.ModelConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise BenchError(
            f"model file {file} does not match its config ({_first_line(exc)})"
        ) from None
    return model.eval()


# ---------------------------------------------------------------------------------------------
# ONNX: export, inspect, check.


@dataclass(frozen=True)
class Parity:
    """How closely an exported graph reproduces PyTorch on real images (fp32 logits)."""

    images: int
    max_abs_diff: float
    reference_absmax: float  # largest |logit| of PyTorch: the scale a relative tolerance uses
    top1_agreement: float  # fraction in [0, 1]

    def to_dict(self) -> dict[str, float | int]:
        """Keys: images, max_abs_diff, reference_absmax, top1_agreement (fraction)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class OnnxExport:
    """What export_onnx produced and how it was checked.

    `fallback_reason` is set when exporter "auto" could not use the dynamo exporter.
    """

    path: str
    exporter: str  # "dynamo" or "torchscript": the one that produced the file
    opset: int
    size_bytes: int
    parity: Parity
    fallback_reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Keys: path, exporter, opset, size_bytes, parity{...}, fallback_reason."""
        out = dataclasses.asdict(self)
        out["parity"] = self.parity.to_dict()
        return out


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    images: torch.Tensor,
    *,
    exporter: Exporter = "auto",
    atol: float = 1e-3,
    rtol: float = 1e-5,
    min_agreement: float = 0.99,
    threads: int | None = None,
) -> OnnxExport:
    """Export `model` to ONNX at `path` (dynamic batch) and check it on `images`.

    `images` are real test images already normalised with harness.data.normalize (the model's
    own preprocessing), float32 NCHW. "auto" tries the dynamo exporter and falls back to the
    TorchScript one when dynamo fails to export or to match; the file is only renamed into place
    after it passes the check: max |logit diff| <= atol + rtol * max |logit| (fp32 rounding
    grows with the logits' scale) and top-1 agreement >= min_agreement.
    """
    if exporter not in EXPORTERS:
        raise BenchError(
            f"unknown ONNX exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}"
        )
    if images.ndim != 4 or images.dtype != torch.float32 or len(images) == 0:
        raise BenchError(f"export check needs float32 NCHW images, got {tuple(images.shape)}")
    model = model.eval().cpu()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    failures: list[str] = []
    for name in order:
        with _temp_file(target) as tmp:
            try:
                # Batch 2, not 1: torch.export specialises size-1 dimensions to constants.
                _run_exporter(name, model, images[:2], tmp)
            except Exception as exc:
                failures.append(f"{name} exporter failed: {_first_line(exc)}")
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
        return OnnxExport(
            path=str(target),
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
    from resnest_bench.harness.runtimes.ort import OrtCpu

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
            f"ONNX model {file} is corrupt or invalid ({_first_line(exc)}); re-export"
        ) from None
    return proto


def check_input_fits(path: str | os.PathLike[str], image_shape: tuple[int, int, int]) -> None:
    """Raise BenchError unless the graph's one input takes (N, C, H, W) batches of image_shape."""
    proto = load_onnx(path)
    inputs = [
        i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}
    ]
    if len(inputs) != 1:
        raise BenchError(f"{path} has {len(inputs)} inputs; a classifier takes one image batch")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in _dims(inputs[0])]
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


@dataclass(frozen=True)
class OrtFormat:
    """An .ort file: ONNX Runtime's pre-optimised flatbuffer format (fast load, small runtime)."""

    path: str
    source: str
    optimization: str
    size_bytes: int

    def to_dict(self) -> dict[str, object]:
        """Keys: path, source (the .onnx it came from), optimization (level baked in),
        size_bytes."""
        return dataclasses.asdict(self)


def convert_to_ort(
    onnx_path: str | os.PathLike[str],
    ort_path: str | os.PathLike[str],
    *,
    optimization: str = "extended",
) -> OrtFormat:
    """Save `onnx_path` as an .ort file, graph optimisations at `optimization` applied.

    "extended" is the portable choice (what convert_onnx_models_to_ort recommends for files
    that travel); "all" adds layout changes specific to this CPU.
    """
    import onnxruntime as ort

    from resnest_bench.harness.runtimes.ort import session_options

    load_onnx(onnx_path)
    target = Path(ort_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _temp_file(target) as tmp:
        options = session_options(1, optimization)
        options.optimized_model_filepath = str(tmp)
        options.add_session_config_entry("session.save_model_format", "ORT")
        try:
            ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise BenchError(
                f"cannot convert {onnx_path} to ORT format ({_first_line(exc)})"
            ) from None
        os.replace(tmp, target)
    return OrtFormat(str(target), str(onnx_path), optimization, target.stat().st_size)


# ---------------------------------------------------------------------------------------------


def _dims(value_info) -> list:
    return list(value_info.type.tensor_type.shape.dim)


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


@contextlib.contextmanager
def _temp_file(target: Path) -> Iterator[Path]:
    """A temp path beside `target` (same filesystem, so os.replace is atomic); always cleaned."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
