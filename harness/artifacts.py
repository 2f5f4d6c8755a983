"""Every artifact kind a run can write, in one table: its file under the run's artifacts/
folder, the label a target on it is reported under, and the build format (harness.formats)
that writes it. Build, measure, formats, runtimes and reuse read it; torch-free.

Adding a runtime that runs an existing kind is one module (harness.runtimes); one with its own
file format is that module, a row here per file, an entry in harness.formats and its build
step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

ARTIFACTS_DIR = "artifacts"


@dataclass(frozen=True)
class ArtifactKind:
    file: str  # name under artifacts/ (an OpenVINO .xml has its .bin beside it)
    label: str  # how a target on it is named after its runtime: "ort-cpu:int8"
    format: str | None  # the harness.formats entry that builds it; None: always written


ARTIFACTS: dict[str, ArtifactKind] = {
    "state_dict": ArtifactKind("model.pt", "fp32", None),
    "onnx_fp32": ArtifactKind("model.onnx", "fp32", "onnx"),
    "onnx_int8": ArtifactKind("model.int8.onnx", "int8", "int8"),
    "ort": ArtifactKind("model.int8.ort", "int8-ort-format", "ort"),
    "openvino_fp32": ArtifactKind("model.openvino.xml", "fp32", "openvino"),
    "openvino_int8": ArtifactKind("model.int8.openvino.xml", "int8", "openvino"),
    "executorch_fp32": ArtifactKind("model.pte", "fp32", "executorch"),
    "executorch_int8": ArtifactKind("model.int8.pte", "int8", "executorch"),
    "litert_fp32": ArtifactKind("model.tflite", "fp32", "tflite"),
    "litert_int8": ArtifactKind("model.int8.tflite", "int8", "tflite"),
}
# The trained model as a run publishes it: what --checkpoint and model reuse read.
MODEL_FILE = PurePath(ARTIFACTS_DIR) / ARTIFACTS["state_dict"].file


def kinds_of(format_name: str) -> tuple[str, ...]:
    """The artifact kinds one build format writes, in table order."""
    return tuple(kind for kind, entry in ARTIFACTS.items() if entry.format == format_name)
