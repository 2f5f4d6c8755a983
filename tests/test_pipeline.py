"""End to end: a tiny suite trains, deploys, and writes result.json + report.md + plots;
results round-trip through their models, compare merges machines, crashes leave nothing."""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path

import pytest
import torch

from resnest_bench.harness import pipeline, stages
from resnest_bench.harness.cli import main
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.report.compare import write_comparison
from resnest_bench.harness.results import RunResult, read_result, write_result
from resnest_bench.harness.results.environment import GpuInfo
from resnest_bench.models.weights import read_state_dict

TINY_SUITE = """
name = "tiny"
device = "cpu"
seed = 0
steps = ["train", "deploy"]

[model]
names = ["resnest-tiny", "resnest-tiny-basic"]

[data]
dataset = "synthetic"
train_subset = 256
test_subset = 64
small_subset = 16

[train]
epochs = 2
batch_size = 32
lr = 0.05
milestones = []

[deploy]
runtimes = ["torch-eager", "ort-cpu"]
throughput_batches = [4]
calibration_images = 32
timed_images = 8
int8_max_drop = 100.0
timing = { warmup = 1, min_iters = 3, min_seconds = 0.0 }
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    suite = root / "tiny.toml"
    suite.write_text(TINY_SUITE)
    argv = [
        "--quiet",
        "run",
        str(suite),
        "--reports",
        str(root / "reports"),
        "--data-dir",
        str(root / "data"),
        "--keep-checkpoints",
    ]
    assert main(argv) == 0
    (run_dir,) = [p for p in (root / "reports").iterdir() if p.name != "work"]
    return run_dir


def test_run_writes_complete_report(tiny_run: Path) -> None:
    files = {p.name for p in tiny_run.iterdir()}
    assert {"result.json", "report.md", "accuracy.png", "latency.png", "artifacts"} <= files
    assert {"epochs-resnest-tiny.jsonl", "epochs-resnest-tiny-basic.jsonl"} <= files
    result = read_result(tiny_run / "result.json")
    assert result.kind == "suite" and result.config.suite == "tiny"
    blocks = {run.model.block for run in result.training.runs}
    assert blocks == {"bottleneck", "basic"}
    assert all(run.dataset.synthetic for run in result.training.runs)
    report = (tiny_run / "report.md").read_text()
    for heading in ("Table 2", "Table 3", "Table 4", "Table 5", "SYNTHETIC", "ort-cpu:int8"):
        assert heading in report
    assert ": fp32 (auto: CPU, fp32)" in report  # what precision ran, and why
    assert (tiny_run / "accuracy.png").read_bytes().startswith(b"\x89PNG")


def test_the_run_folder_holds_its_log(tiny_run: Path) -> None:
    """run.log: every status and progress line, timestamped, from the command to the publish."""
    lines = (tiny_run / "run.log").read_text().splitlines()
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", s) for s in stamps)
    text = "\n".join(line.split(" ", 1)[1] for line in lines)
    assert text.startswith(f"run {tiny_run.name}: resnest-bench --quiet run ")
    for said in (
        "train-resnest-tiny epoch 2:",  # each epoch
        "deploy [1/3] build: ONNX export and parity check",  # each build and measuring step
        "deploy [2/3] build: ONNX int8 (calibration, accuracy gate)",
        f"run {tiny_run.name}: publishing",
    ):
        assert said in text, said


def test_result_round_trips_through_the_models(tiny_run: Path, tmp_path: Path) -> None:
    result = read_result(tiny_run / "result.json")
    assert result.config.settings["data"]["small_subset"] == 16
    write_result(tmp_path / "copy.json", result)
    assert read_result(tmp_path / "copy.json") == result
    broken = json.loads((tiny_run / "result.json").read_text())
    broken["training"]["runs"][0]["epochs"][0]["train_s"] = "fast"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(BenchError, match=r"training.runs\[0\].epochs\[0\].train_s"):
        read_result(tmp_path / "broken.json")


def _as_machine(result: RunResult, gpu: str) -> RunResult:
    environment = result.environment.model_copy(
        update={"gpu": GpuInfo(name=gpu, compute_capability="7.0")}
    )
    return result.model_copy(
        update={"run_id": f"{result.run_id}-{gpu}", "environment": environment}
    )


def test_compare_merges_two_machines_with_seed_reference(tiny_run: Path, tmp_path: Path) -> None:
    result = read_result(tiny_run / "result.json")
    paths = []
    for gpu in ("Tesla V100-SXM2-16GB", "NVIDIA H100 80GB HBM3"):
        path = tmp_path / f"{gpu[:4]}.json"
        write_result(path, _as_machine(result, gpu))
        paths.append(path)
    out = write_comparison(paths, tmp_path / "reports", seed_reference=True)
    text = (out / "compare.md").read_text()
    assert "Tesla V100-SXM2-16GB" in text and "NVIDIA H100 80GB HBM3" in text
    assert "V100 [reference]" in text and "Caffe2 (seed)" in text
    assert text.count("| basic |") >= 2 + 3  # both machines and the seed's three GPUs


def test_compare_refuses_foreign_and_newer_files(tmp_path: Path, capsys) -> None:
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"hello": 1}))
    assert main(["compare", str(foreign), "--reports", str(tmp_path)]) == 2
    assert "not a resnest-bench result" in capsys.readouterr().err
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"schema_version": 99, "kind": "suite"}))
    assert main(["compare", str(newer), "--reports", str(tmp_path)]) == 2
    assert "upgrade resnest-bench" in capsys.readouterr().err


def test_crash_while_reporting_leaves_no_half_written_run(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        TINY_SUITE.replace('"resnest-tiny", "resnest-tiny-basic"', '"resnest-tiny"').replace(
            'steps = ["train", "deploy"]', 'steps = ["train"]'
        )
    )

    def crash(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "report.md"))

    monkeypatch.setattr(pipeline, "write_report", crash)
    argv = ["--quiet", "run", str(suite), "--reports", str(tmp_path / "r")]
    assert main([*argv, "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("resnest-bench: error: ") and "report.md: no space left" in last
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["work"]  # checkpoints only
    (work,) = (tmp_path / "r" / "work").iterdir()
    assert (work / "training-result.json").is_file()  # written when training ended
    assert f"run {work.name} stopped" in err and f"--resume {work.name}" in err


def test_failed_deploy_keeps_training_and_checkpoints(tmp_path: Path, monkeypatch, capsys) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)

    def broken(*_, **__):
        raise RuntimeError("exporter exploded\nsecond line")

    monkeypatch.setattr(stages, "run_deploy", broken)
    reports = tmp_path / "r"
    argv = ["--quiet", "run", str(suite), "--reports", str(reports), "--data-dir", str(tmp_path)]
    assert main(argv) == 1  # published, but a step is missing: scripts must notice
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("resnest-bench: 1 failed (deploy); the reasons and every other")
    (run_dir,) = [p for p in reports.iterdir() if p.name != "work"]
    result = read_result(run_dir / "result.json")
    assert result.failed_steps == {"deploy": "RuntimeError: exporter exploded"}
    assert result.training.runs and result.deployment is None
    assert "deploy: FAILED: RuntimeError: exporter exploded" in (run_dir / "report.md").read_text()
    assert (reports / "work" / run_dir.name).is_dir()  # kept: the model is still there


def test_trained_models_are_released_before_the_deploy_workers_start(tmp_path, monkeypatch):
    """The deploy workers are other processes on the same GPU: every trained model leaves it,
    and the allocator's cache is handed back, before the first worker starts."""
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    events: list[tuple[str, int]] = []
    release = pipeline.release_device_memory

    def released(models):
        events.append(("release", len(models)))
        return release(models)

    def deploy(*_, **__):
        events.append(("deploy", 0))
        raise RuntimeError("stop here")

    monkeypatch.setattr(pipeline, "release_device_memory", released)
    monkeypatch.setattr(stages, "run_deploy", deploy)
    argv = ["--quiet", "run", str(suite), "--reports", str(tmp_path / "r")]
    assert main([*argv, "--data-dir", str(tmp_path)]) == 1
    assert events == [("release", 2), ("deploy", 0)]  # both trained blocks, then deploy


def test_finished_run_drops_its_checkpoints(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE.replace('steps = ["train", "deploy"]', 'steps = ["train"]'))
    reports = tmp_path / "r"
    argv = ["run", str(suite), "--reports", str(reports), "--data-dir", str(tmp_path), "-v"]
    assert main(argv) == 0
    assert not (reports / "work").exists()  # no checkpoints left, nor an empty work root


def test_gpu_suite_without_gpu_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["run", "gpu", "--quick", "--reports", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a CUDA GPU" in err
    assert not any(tmp_path.iterdir())


def test_bad_suite_file_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_SUITE.replace("epochs = 2", "epochs = 'two'"))
    assert main(["run", str(bad), "--reports", str(tmp_path / "r")]) == 2
    assert "train.epochs: Input should be a valid integer" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _step(tmp_path: Path, *args: str) -> tuple[Path, RunResult]:
    """Run a step command on synthetic data into tmp_path; its run dir and validated result."""
    common = [
        "--dataset",
        "synthetic",
        "--test-subset",
        "32",
        "--reports",
        str(tmp_path),
        "--data-dir",
        str(tmp_path / "d"),
    ]
    assert main(["--quiet", *args, *common]) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name not in ("work", "d")]
    return run_dir, read_result(run_dir / "result.json")


def test_transfer_from_our_checkpoint(tiny_run: Path, tmp_path: Path) -> None:
    checkpoint = tiny_run.parent / "work" / tiny_run.name / "train-resnest-tiny" / "checkpoint.pt"
    run_dir, result = _step(
        tmp_path,
        "transfer",
        "--checkpoint",
        str(checkpoint),
        "--model",
        "resnest-tiny",
        "--epochs",
        "1",
        "-b",
        "32",
        "--train-subset",
        "128",
    )
    transfer = result.training.transfer
    assert result.kind == "transfer" and transfer.init.source == "ours"
    assert transfer.init.skipped == ["fc."]
    assert "## Transfer learning" in (run_dir / "report.md").read_text()


class Killed(Exception):
    """Stands in for a kill between two epochs (after the first epoch's checkpoint)."""


def _kill_after_epoch(monkeypatch, epoch: int) -> None:
    real = stages.training_callbacks

    def callbacks(bar, label, epochs):
        inner = real(bar, label, epochs)

        def on_epoch_end(record) -> None:
            inner.on_epoch_end(record)
            if record.epoch == epoch:
                raise Killed

        return type(inner)(on_epoch_end=on_epoch_end, on_batch=inner.on_batch)

    monkeypatch.setattr(stages, "training_callbacks", callbacks)


def _learning(run) -> list[tuple]:
    return [
        (e.epoch, e.lr, e.train_loss, e.train_acc, e.test_loss, e.test_top1) for e in run.epochs
    ]


def test_resume_after_a_kill_finishes_the_same_run(tmp_path: Path, monkeypatch) -> None:
    """Killed after epoch 1 of 2 and resumed, a run ends with the weights and records of one
    that never stopped (bit-exact on CPU)."""

    def argv(reports: Path) -> list[str]:
        return [
            "--quiet",
            "train",
            "--model",
            "resnest-tiny",
            "--dataset",
            "synthetic",
            "--epochs",
            "2",
            "-b",
            "32",
            "--train-subset",
            "64",
            "--test-subset",
            "32",
            "--reports",
            str(reports),
            "--data-dir",
            str(tmp_path / "d"),
            "--keep-checkpoints",
        ]

    assert main(argv(tmp_path / "straight")) == 0
    (straight_id,) = [p.name for p in (tmp_path / "straight" / "work").iterdir()]
    with monkeypatch.context() as patch:
        _kill_after_epoch(patch, 1)
        with pytest.raises(Killed):
            main(argv(tmp_path / "r"))
    (run_id,) = [p.name for p in (tmp_path / "r" / "work").iterdir()]
    assert not (tmp_path / "r" / run_id).exists()  # no half-written run
    assert main([*argv(tmp_path / "r"), "--resume", run_id]) == 0

    (resumed,) = read_result(tmp_path / "r" / run_id / "result.json").training.runs
    (straight,) = read_result(tmp_path / "straight" / straight_id / "result.json").training.runs
    assert resumed.resumed_from_epoch == 1 and straight.resumed_from_epoch is None
    assert len(resumed.epochs) == 2 and _learning(resumed) == _learning(straight)
    weights = [
        read_state_dict(reports / "work" / rid / "train-resnest-tiny" / "checkpoint.pt")
        for reports, rid in ((tmp_path / "r", run_id), (tmp_path / "straight", straight_id))
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.slow
def test_export_builds_checked_artifacts_without_timing(tiny_run: Path, tmp_path: Path) -> None:
    model_file = tiny_run / "artifacts" / "model.pt"
    noise = ["--int8-max-drop", "100"]  # a briefly trained model: accuracy is noise here
    run_dir, result = _step(
        tmp_path, "export", "--checkpoint", str(model_file), "--train-subset", "64", *noise
    )
    deployment = result.deployment
    assert deployment.targets == [] and result.kind == "deploy"
    assert deployment.artifacts.export.parity.top1_agreement >= 0.99
    assert {p.name for p in (run_dir / "artifacts").iterdir()} >= {"model.onnx", "model.int8.onnx"}


EXPORT_SUITE = TINY_SUITE.replace('steps = ["train", "deploy"]', 'steps = ["train", "export"]')
EXPORT_SUITE = EXPORT_SUITE.replace(
    'names = ["resnest-tiny", "resnest-tiny-basic"]', 'names = ["resnest-tiny"]'
)
EXPORT_SUITE = EXPORT_SUITE.replace("epochs = 2", "epochs = 1").replace(
    "int8_max_drop = 100.0", "int8_max_drop = 1.0"
)


@pytest.mark.slow
def test_int8_outside_the_limit_is_reported_then_refused(tmp_path, monkeypatch, capsys):
    from resnest_bench.harness.export.gate import GateData

    scores = iter([90.0] + [10.0] * 20)  # fp32, then every int8 attempt loses 80 points
    monkeypatch.setattr(GateData, "top1", lambda *_: next(scores))
    suite = tmp_path / "export.toml"
    suite.write_text(EXPORT_SUITE)
    argv = ["--quiet", "run", str(suite), "--reports", str(tmp_path / "r")]
    assert main([*argv, "--data-dir", str(tmp_path / "d")]) == 3
    (run_dir,) = [p for p in (tmp_path / "r").iterdir() if p.name != "work"]
    int8 = read_result(run_dir / "result.json").deployment.artifacts.int8
    assert not int8.within_limit and int8.rejected and len(int8.attempts) > 1
    report = (run_dir / "report.md").read_text()
    assert "REJECTED" in report  # every figure kept
    first_screen = report.split("## Run")[0]
    assert "**Exit 3: int8 REJECTED: model.int8.onnx (best variant `" in first_screen
    assert "loses 80.00 pts); limit 1 pts of fp32 top-1" in first_screen
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("resnest-bench: int8 REJECTED: model.int8.onnx (best variant")
    assert "loses 80.00 pts); limit 1 pts" in last and "--allow-int8-loss" in last


def test_allow_int8_loss_reaches_the_deploy_section():
    from resnest_bench.harness.cli import build_parser
    from resnest_bench.harness.flags import overrides_from

    args = build_parser().parse_args(
        ["run", "cpu-runtime", "--allow-int8-loss", "--int8-max-drop", "2"]
    )
    assert overrides_from(args)["deploy"] == {"allow_int8_loss": True, "int8_max_drop": 2.0}
    args = build_parser().parse_args(["export", "--checkpoint", "m.pt"])
    assert "allow_int8_loss" not in overrides_from(args).get("deploy", {})
