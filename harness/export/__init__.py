"""Export stage: every deployable file of a trained model, each checked before it is kept
(stage.py); one module per format (onnx, int8, ort_format, openvino, executorch, litert)
and the checks they share (gate, sensitivity).
"""

from resnest_bench.harness.export.stage import (
    ALWAYS_BUILT,
    EVAL_SEED,
    HELDOUT_IMAGES,
    PARITY_IMAGES,
    build_artifacts,
)

__all__ = [
    "ALWAYS_BUILT",
    "EVAL_SEED",
    "HELDOUT_IMAGES",
    "PARITY_IMAGES",
    "build_artifacts",
]
