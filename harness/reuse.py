"""Find what an earlier run left for a later one: the newest model the gpu suite trained.

The cpu-runtime suite deploys a real model when one exists under the reports folder (the gpu
suite's artifacts/model.pt), so the main job reports real accuracies without --checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.results import read_result

MODEL_FILE = Path("artifacts") / "model.pt"


def newest_gpu_model(reports_root: Path) -> Path | None:
    """artifacts/model.pt of the newest finished gpu-suite run under reports_root, or None."""
    found = []
    for result_file in reports_root.glob("*/result.json"):
        model = result_file.parent / MODEL_FILE
        if not model.is_file():
            continue
        try:
            result = read_result(result_file)
        except BenchError:  # a foreign or broken result is not a model to reuse
            continue
        if result.config.suite == "gpu":
            found.append((result.created, model))
    return max(found)[1] if found else None
