"""The cross-check: each target's harness figure beside an independent peer's; a target the
harness runs slower than its users would (here: a variable in the harness's environment that
slows Python, which the peer's clean environment does not carry) is flagged and never shipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnest_bench import models
from resnest_bench.harness.checkpoints import save_torch_artifact
from resnest_bench.harness.config import DeploySection, TimingSection
from resnest_bench.harness.crosscheck import peers
from resnest_bench.harness.crosscheck.stage import compare, crosscheck_published, run_crosscheck
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.report.run import render
from resnest_bench.harness.results.crosscheck import Crosscheck
from resnest_bench.harness.results.deployment import Target, ThreadPolicy
from tests.test_report_summary import QUIET, _first_screen, _result

POLICY = ThreadPolicy(threads=1, ort_spinning=True, omp_wait_policy=None, reason="test")
EAGER = Target(
    target="torch-eager:fp32", runtime="torch-eager", artifact="state_dict", status="ok",
    device="cpu",
)  # fmt: skip


def test_ratio_per_round_and_the_ten_percent_line():
    within = compare("a", "peer", [0.0100, 0.0104, 0.0098], [0.0096, 0.0100, 0.0100])
    assert within.flag is None and within.ratio.rounds == 3
    assert within.ratio.median == pytest.approx(1.04) and within.ratio.low == pytest.approx(0.98)
    assert within.harness_ms == pytest.approx(10.0) and within.peer_ms == pytest.approx(10.0)
    slow = compare("b", "plain torch loop", [0.0120, 0.0121], [0.0100, 0.0100])
    assert slow.ratio.median == pytest.approx(1.205)
    assert (
        slow.flag == "harness 12.05 ms is 1.21x plain torch loop's 10.00 ms (more than 10% apart)"
    )
    fast = compare("c", "peer", [0.0080], [0.0100])
    assert fast.flag is not None and "0.80x" in fast.flag


def test_peer_starts_with_a_clean_environment(monkeypatch):
    monkeypatch.setenv("PYTHONTRACEMALLOC", "25")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    env = peers.peer_environment({})
    assert "PYTHONTRACEMALLOC" not in env and "OMP_WAIT_POLICY" not in env and "PATH" in env
    assert peers.peer_environment({"OMP_WAIT_POLICY": "PASSIVE"})["OMP_WAIT_POLICY"] == "PASSIVE"


def test_gpu_and_unknown_targets_get_no_peer():
    assert peers.no_peer_reason("torch-eager", "cuda:0") == (
        "runs on cuda:0: the cross-check covers CPU targets"
    )
    assert peers.no_peer_reason("ort-tensorrt", "cpu") == "no independent peer for ort-tensorrt"
    assert peers.no_peer_reason("openvino", "cpu") is None


@pytest.mark.slow
def test_a_handicapped_target_is_caught(tmp_path, monkeypatch):
    """PYTHONTRACEMALLOC in the harness's environment slows its eager process (2.3x here);
    the plain loop, started clean, does not inherit it: the row is flagged. The same rounds
    without the handicap are not flagged only on a quiet host, so that is not asserted here."""
    save_torch_artifact(models.create_model("resnest-tiny").eval(), tmp_path / "model.pt")
    monkeypatch.setenv("PYTHONTRACEMALLOC", "1")
    section = DeploySection(rounds=2, timing=TimingSection(warmup=2, min_iters=10))
    check = run_crosscheck(
        tmp_path, {"state_dict": "model.pt"}, [EAGER], (3, 32, 32), POLICY, section
    )
    assert check.skipped == {}
    (row,) = check.rows
    assert row.peer == "plain torch loop" and row.ratio.rounds == 2
    assert row.ratio.median > 1.5, row
    assert row.flag is not None and row.flag.startswith("harness ")


def test_a_flagged_target_is_never_the_headline_and_the_trust_line_says_why():
    result = _result(QUIET, flagged=False)
    row = compare("ort-cpu:int8", "plain onnxruntime loop", [0.0070], [0.0050])
    check = Crosscheck(rows=[row], threads=2, rounds=1, peer_environment="clean")
    deployment = result.deployment.model_copy(update={"crosscheck": check})
    text = render(result.model_copy(update={"deployment": deployment}), [])
    first = _first_screen(text)
    assert "Ship: **ort-cpu:fp32**" in first
    assert "**Trust: NOT trustworthy** - ort-cpu:int8: cross-check: harness 7.00 ms" in first
    assert (
        "| ort-cpu:int8 | plain onnxruntime loop | 7.00 | 5.00 | 1.40x (1.40-1.40, 1 rounds)"
        in text
    )


def test_crosscheck_of_a_run_without_artifacts_is_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(BenchError, match="result file not found"):
        crosscheck_published(run)
    example = Path(__file__).parents[1] / "reports" / "examples" / "all-runtimes-digits-zen5"
    (run / "result.json").write_bytes((example / "result.json").read_bytes())
    with pytest.raises(BenchError, match="published without its artifacts"):
        crosscheck_published(run)
