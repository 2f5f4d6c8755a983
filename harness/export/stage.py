"""Build stage: every deployable file of a trained model, each checked before it is kept.

state_dict (PyTorch), ONNX fp32 (parity-checked against PyTorch on real test images), ONNX
int8 (accuracy-gated against fp32 on held-out images), the int8 graph as an .ort file, and
each runtime's own files (OpenVINO IRs, ExecuTorch .pte lowered to XNNPACK, LiteRT .tflite;
fp32 and gated int8) when that runtime is wanted; `formats` (harness.formats) narrows the build
to what was asked for.
The record names files within the output folder, so it stays true when the folder moves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from resnest_bench.harness.artifacts import ARTIFACTS
from resnest_bench.harness.checkpoints import save_torch_artifact
from resnest_bench.harness.config import DeploySection
from resnest_bench.harness.data import Dataset, normalize
from resnest_bench.harness.data.split import stratified_subset
from resnest_bench.harness.errors import BenchError, one_line
from resnest_bench.harness.export.gate import GateData, artifact_bytes, artifact_parts
from resnest_bench.harness.export.int8 import quantize_int8
from resnest_bench.harness.export.onnx import export_onnx
from resnest_bench.harness.export.ort_format import convert_to_ort
from resnest_bench.harness.formats import FORMATS, formats_to_build, not_asked
from resnest_bench.harness.results.deployment import ArtifactsRecord, ConvertedRecord

ALWAYS_BUILT = ("state_dict", "onnx_fp32", "onnx_int8", "ort")  # by default
PARITY_IMAGES = 256  # test images the ONNX graph must reproduce PyTorch on
HELDOUT_IMAGES = 1000  # test images the int8 accuracy gate compares fp32 and int8 on
# Both are class-balanced picks (classes taking turns, this seed), never a sorted folder's
# first files: those can all be one class, and then every target agrees.
EVAL_SEED = 0


def build_artifacts(
    model: nn.Module,
    dataset: Dataset,
    out_dir: Path,
    section: DeploySection,
    step: Callable[[str, int, int], None] = lambda *_: None,
    *,
    threads: int | None = None,
) -> ArtifactsRecord:
    """Write every artifact into `out_dir`; BenchError (and no record) when the ONNX export or
    its int8 fails a check. A runtime's own conversion that fails is recorded as failed.
    step(description, done, total) names each build step as it starts (progress). `threads`:
    what the parity check and the int8 gates run with (the timed targets' count; None: each
    library's default)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # A copy in the default memory format: channels-last weights (a training speed setting)
    # break ExecuTorch's layout pass, and the other converters read plain layouts.
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    chosen = formats_to_build(section)
    skipped = not_asked(section, chosen)
    paths = {"state_dict": out_dir / ARTIFACTS["state_dict"].file}
    save_torch_artifact(model, paths["state_dict"], dataset.preprocessing)
    parity = stratified_subset(dataset.test, PARITY_IMAGES, EVAL_SEED)
    parity_x = normalize(parity.images, dataset.mean, dataset.std)
    gate = _gate_data(dataset, section, threads)
    exported = int8 = ort_file = openvino = executorch = litert = None

    def starting(fmt: str) -> None:
        step(f"build: {FORMATS[fmt].step}", chosen.index(fmt), len(chosen))

    if "onnx" in chosen:
        starting("onnx")
        paths["onnx_fp32"] = out_dir / ARTIFACTS["onnx_fp32"].file
        exported = export_onnx(
            model, paths["onnx_fp32"], parity_x, atol=section.parity_atol, threads=threads
        )
    if "int8" in chosen:
        starting("int8")
        paths["onnx_int8"] = out_dir / ARTIFACTS["onnx_int8"].file
        int8 = quantize_int8(paths["onnx_fp32"], paths["onnx_int8"], gate)
    if "ort" in chosen:
        starting("ort")
        paths["ort"] = out_dir / ARTIFACTS["ort"].file
        ort_file = convert_to_ort(paths["onnx_int8"], paths["ort"])
    failed: dict[str, str] = {}
    converter = _Converter(out_dir, paths, failed)
    if "openvino" in chosen:
        from resnest_bench.harness.export.openvino import build_openvino

        starting("openvino")
        openvino = converter.run(
            "openvino", lambda fp32, int8: build_openvino(paths["onnx_fp32"], fp32, int8, gate)
        )
    if "executorch" in chosen:
        from resnest_bench.harness.export.executorch import build_executorch

        starting("executorch")
        executorch = converter.run(
            "executorch", lambda fp32, int8: build_executorch(model, fp32, int8, gate)
        )
    if "tflite" in chosen:
        from resnest_bench.harness.export.litert import build_litert, converter_missing

        starting("tflite")
        reason = converter_missing()
        if reason is not None:  # the runtime's rows are skipped with this reason, not failed
            skipped.update(dict.fromkeys(("litert_fp32", "litert_int8"), reason))
        else:
            litert = converter.run(
                "litert",
                lambda fp32, int8: build_litert(
                    model, parity_x, fp32, int8, gate, atol=section.parity_atol
                ),
            )
    sizes = {kind: artifact_bytes(path) for kind, path in paths.items()}
    return ArtifactsRecord(
        files={kind: path.name for kind, path in paths.items()},
        sizes_bytes=sizes,
        int8_vs_state_dict=sizes["onnx_int8"] / sizes["state_dict"] if int8 else None,
        export=exported,
        int8=int8,
        ort=ort_file,
        openvino=openvino,
        executorch=executorch,
        litert=litert,
        skipped=skipped,
        failed=failed,
    )


def _gate_data(dataset: Dataset, section: DeploySection, threads: int | None) -> GateData:
    """What every int8 build is calibrated on and gated against: the training images, and a
    class-balanced held-out slice of the test images."""
    return GateData(
        calibration=dataset.train,
        calibration_images=section.calibration_images,
        heldout=stratified_subset(dataset.test, HELDOUT_IMAGES, EVAL_SEED),
        mean=dataset.mean,
        std=dataset.std,
        max_drop_pts=section.int8_max_drop,
        allow_loss=section.allow_int8_loss,
        threads=threads,
        calibration_method=section.calibration_method,
        seed=EVAL_SEED,
    )


@dataclass(frozen=True)
class _Converter:
    """Runs one runtime's own conversion (fp32 and int8 files) so that its failure fails that
    runtime's rows, with the one-line reason, and leaves no file of it: the ONNX artifacts and
    the other runtimes are still built and measured."""

    out_dir: Path
    paths: dict[str, Path]
    failed: dict[str, str]

    def run(
        self, runtime: str, build: Callable[[Path, Path], ConvertedRecord]
    ) -> ConvertedRecord | None:
        kinds = (f"{runtime}_fp32", f"{runtime}_int8")
        files = [self.out_dir / ARTIFACTS[kind].file for kind in kinds]
        try:
            record = build(*files)
        except Exception as exc:  # any converter or runtime error: this runtime only
            reason = str(exc) if isinstance(exc, BenchError) else one_line(exc)
            self.failed.update(dict.fromkeys(kinds, f"{runtime} build failed: {reason}"))
            for file in files:
                for part in artifact_parts(file):
                    part.unlink(missing_ok=True)
            return None
        self.paths.update(zip(kinds, files, strict=True))
        return record
