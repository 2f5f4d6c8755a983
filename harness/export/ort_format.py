"""The .ort artifact: ONNX Runtime's pre-optimised flatbuffer format (fast load, small runtime)."""

from __future__ import annotations

import os
from pathlib import Path

from resnest_bench.harness.errors import BenchError, one_line
from resnest_bench.harness.export.files import temp_file
from resnest_bench.harness.export.onnx import load_onnx
from resnest_bench.harness.results.deployment import OrtRecord
from resnest_bench.harness.runtimes.ort import session_options

# Graph optimisations baked into the file: "extended" is the portable choice (what
# convert_onnx_models_to_ort recommends for files that travel); "all" would add layout changes
# specific to the CPU that converts it.
ORT_FORMAT_OPTIMIZATION = "extended"


def convert_to_ort(
    onnx_path: str | os.PathLike[str], ort_path: str | os.PathLike[str]
) -> OrtRecord:
    """Save `onnx_path` as an .ort file with ORT_FORMAT_OPTIMIZATION applied; the record names
    both files."""
    import onnxruntime as ort

    load_onnx(onnx_path)
    target = Path(ort_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with temp_file(target) as tmp:
        options = session_options(1, ORT_FORMAT_OPTIMIZATION)
        options.optimized_model_filepath = str(tmp)
        options.add_session_config_entry("session.save_model_format", "ORT")
        try:
            ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise BenchError(
                f"cannot convert {onnx_path} to ORT format ({one_line(exc)})"
            ) from None
        os.replace(tmp, target)
    return OrtRecord(
        path=target.name,
        source=Path(onnx_path).name,
        optimization=ORT_FORMAT_OPTIMIZATION,
        size_bytes=target.stat().st_size,
    )
