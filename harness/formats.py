"""What the build stage (harness.export) can write, by format name (`export --formats`), and
which artifact kinds (harness.artifacts) each name stands for. Torch-free, so
the CLI's --help and config validation can name the formats without importing torch.

A format may need another built first (int8 quantizes the ONNX graph, OpenVINO converts it);
those are built too and kept. A runtime's own format is built by default only when that runtime
is wanted (selected, or installed when none are selected); naming it builds it regardless.
Adding a format is one entry here and one block in harness.export.build_artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from resnest_bench.harness.artifacts import kinds_of
from resnest_bench.harness.runtimes import runtime_class

if TYPE_CHECKING:
    from resnest_bench.harness.config import DeploySection


@dataclass(frozen=True)
class Format:
    step: str  # what building it does, as progress names it
    needs: tuple[str, ...] = ()
    runtime: str | None = None  # whose own format it is; None: always built by default


FORMATS: dict[str, Format] = {
    "onnx": Format("ONNX export and parity check"),
    "int8": Format("ONNX int8 (calibration, accuracy gate)", needs=("onnx",)),
    "ort": Format(".ort conversion", needs=("int8",)),
    "openvino": Format(
        "OpenVINO IRs (fp32, NNCF int8)",
        needs=("onnx",),
        runtime="openvino",
    ),
    "executorch": Format(
        "ExecuTorch programs (fp32, PT2E int8)",
        runtime="executorch",
    ),
    "tflite": Format("LiteRT models (fp32, int8)", runtime="litert"),
}


def check_formats(names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` when every one is a known format; ValueError naming the first unknown one."""
    for name in names:
        if name not in FORMATS:
            raise ValueError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    return names


def formats_to_build(section: DeploySection) -> tuple[str, ...]:
    """The formats a build writes, in FORMATS order: those asked for with what they need, or
    by default every format whose runtime is wanted."""
    if section.formats is None:
        return tuple(
            name
            for name, entry in FORMATS.items()
            if entry.runtime is None or _wanted(entry.runtime, section)
        )
    chosen: set[str] = set()
    todo = list(section.formats)
    while todo:
        name = todo.pop()
        if name not in chosen:
            chosen.add(name)
            todo.extend(FORMATS[name].needs)
    return tuple(name for name in FORMATS if name in chosen)


def not_asked(section: DeploySection, built: tuple[str, ...]) -> dict[str, str]:
    """Why each kind of a format left out of an explicit `formats` list was not built."""
    if section.formats is None:
        return {}
    reason = f"not among the formats asked for ({' '.join(section.formats)})"
    return {
        kind: reason
        for name, entry in FORMATS.items()
        if name not in built
        for kind in kinds_of(name)
    }


def _wanted(runtime: str, section: DeploySection) -> bool:
    """A runtime's own format by default: when it or a variant of it (openvino-bf16 runs
    OpenVINO's fp32 IR) is selected; all: when it is installed."""
    if section.runtimes is not None:
        return any(
            name == runtime or runtime_class(name).family == runtime for name in section.runtimes
        )
    return runtime_class(runtime).unavailable_reason() is None
