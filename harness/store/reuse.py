"""Find what an earlier run left for a later one: the newest model another suite trained.

A suite with `model.reuse_from` (cpu-runtime: the gpu suite) deploys that suite's newest
artifacts/model.pt under the reports folder when one exists, so the main job reports real
accuracies without --checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from resnest_bench.harness.artifacts import MODEL_FILE
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.results import read_result


def newest_model(reports_root: Path, suite: str) -> Path | None:
    """artifacts/model.pt of the newest finished run of `suite` under reports_root, or None."""
    found = []
    for result_file in reports_root.glob("*/result.json"):
        model = result_file.parent / MODEL_FILE
        if not model.is_file():
            continue
        try:
            result = read_result(result_file)
        except BenchError:  # a foreign or broken result is not a model to reuse
            continue
        if result.config.suite == suite:
            found.append((result.created, model))
    return max(found)[1] if found else None
