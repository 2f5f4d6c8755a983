"""A suite with `model.reuse_from` (cpu-runtime: gpu) deploys that suite's newest model under
the reports folder; --checkpoint wins; with none found it trains its own."""

from __future__ import annotations

import json
from pathlib import Path

from resnest_bench.harness.artifacts import MODEL_FILE
from resnest_bench.harness.config import load_suite
from resnest_bench.harness.pipeline import with_reused_model
from resnest_bench.harness.stages import RunRequest
from resnest_bench.harness.store.reuse import newest_model
from tests.test_results import make_result


def _run(root: Path, run_id: str, suite: str, created: str, *, model: bool = True) -> Path:
    folder = root / run_id
    (folder / MODEL_FILE).parent.mkdir(parents=True)
    result = make_result(run_id=run_id, created=created, config={"suite": suite})
    (folder / "result.json").write_text(json.dumps(result))
    if model:
        (folder / MODEL_FILE).write_bytes(b"weights")
    return folder / MODEL_FILE


def _reports(root: Path) -> Path:
    _run(root, "old-gpu", "gpu", "2026-01-01T00:00:00+00:00")
    newest = _run(root, "new-gpu", "gpu", "2026-03-01T00:00:00+00:00")
    _run(root, "unfinished-gpu", "gpu", "2026-04-01T00:00:00+00:00", model=False)
    _run(root, "other", "sweep", "2026-05-01T00:00:00+00:00")
    broken = root / "broken"
    (broken / MODEL_FILE).parent.mkdir(parents=True)
    (broken / "result.json").write_text("{not json")
    (broken / MODEL_FILE).write_bytes(b"weights")
    return newest


def test_the_newest_finished_run_of_the_named_suite_is_found(tmp_path) -> None:
    newest = _reports(tmp_path)
    assert newest_model(tmp_path, "gpu") == newest
    assert newest_model(tmp_path, "cpu-runtime") is None
    assert newest_model(tmp_path / "missing", "gpu") is None


def test_cpu_runtime_deploys_the_gpu_model_unless_a_checkpoint_is_given(tmp_path) -> None:
    newest = _reports(tmp_path / "reports")
    suite, path = load_suite("cpu-runtime")
    assert suite.model.reuse_from == "gpu"

    def request(reports: Path, checkpoint: Path | None = None) -> RunRequest:
        return RunRequest(suite, path, False, reports, tmp_path / "data", checkpoint=checkpoint)

    assert with_reused_model(request(tmp_path / "reports")).checkpoint == newest
    own = tmp_path / "mine.pt"
    assert with_reused_model(request(tmp_path / "reports", own)).checkpoint == own
    assert with_reused_model(request(tmp_path / "empty")).checkpoint is None
    gpu, gpu_path = load_suite("gpu")
    plain = RunRequest(gpu, gpu_path, False, tmp_path / "reports", tmp_path / "data")
    assert with_reused_model(plain).checkpoint is None  # no reuse_from: trains its own
