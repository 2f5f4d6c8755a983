"""Typed results: files round-trip with key order kept; invalid results are refused naming the
JSON path; version-1 files load; foreign and newer files are refused with a clear message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.results import RESULT_VERSION, RunResult, read_result, write_result
from resnest_bench.harness.results.deployment import Target
from resnest_bench.harness.results.environment import Environment
from resnest_bench.harness.results.stats import Stats
from resnest_bench.harness.results.training import EpochRecord

ENVIRONMENT = {"python": {"version": "3.11.9"}, "cpu": {}, "versions": {}}


def make_result(**overrides):
    result = {
        "schema_version": RESULT_VERSION,
        "kind": "train",
        "run_id": "r1",
        "created": "2025-01-02T03:04:05+00:00",
        "command": ["resnest-bench", "train"],
        "seed": 0,
        "environment": ENVIRONMENT,
        "config": {"suite": "tiny"},
        "training": {"runs": [], "transfer": None},
    }
    result.update(overrides)
    return result


def error_of(path, obj) -> str:
    path.write_text(json.dumps(obj))
    with pytest.raises(BenchError) as info:
        read_result(path)
    return str(info.value)


EPOCH = {
    "epoch": 1,
    "batch_size": 32,
    "lr": 0.1,
    "warmup": True,
    "train_s": 1.5,
    "eval_s": 0.2,
    "cumulative_train_s": 1.5,
    "images": 256,
    "images_per_s": 170,  # an int is a JSON number
    "train_loss": None,
    "train_acc": 0.1,
    "weights_finite": True,
    "test_loss": 2.3,
    "test_top1": 0.1,
    "peak_memory_bytes": None,
    "energy_j": None,
    "mean_power_w": None,
    "energy_method": None,
    "flops_per_s": 1e9,
    "mfu": None,
}


STATS = {"n": 1, "mean": 1.0, "median": 1.0, "p90": 1.0, "p99": 1.0, "min": 1, "max": 1}
RUN = {
    "config": {"suite": "tiny"},
    "recipe": {
        "epochs": 4,
        "batch_size": 32,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "milestones": [],
        "step_size": None,
        "gamma": 0.1,
        "label_smoothing": 0.0,
    },
    "options": {
        "device": "cpu",
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "compile_mode": "default",
        "seed": 0,
        "target_top1": 0.89,
        "auto_batch": False,
    },
    "accel": {
        "device": "cpu",
        "device_name": "cpu",
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "compile_mode": None,
        "cudnn_benchmark": False,
        "peak_flops": None,
    },
    "dataset": {
        "name": "synthetic",
        "synthetic": True,
        "source": "generated",
        "num_classes": 10,
        "image_size": 32,
        "train_images": 256,
        "test_images": 64,
    },
    "model": {
        "name": "resnest-tiny",
        "block": "bottleneck",
        "stem": "cifar",
        "radix": 2,
        "cardinality": 1,
        "num_classes": 10,
        "params": 1000,
        "macs": 2000,
        "flops_per_train_image": 12000,
    },
    "batch_size": 32,
    "failed_batch_sizes": [],
    "init": None,
    "resumed_from_epoch": None,
    "epochs": [EPOCH] * 4,
    "summary": {
        "epochs_planned": 4,
        "epochs_completed": 4,
        "first_epoch_s": 1.5,
        "steady_epoch_s": {**STATS, "std": 0.0, "cv": 0.0},
        "steady_images_per_s": 170.0,
        "steady_mfu": None,
        "target_top1": 0.89,
        "time_to_target_s": None,
        "epochs_to_target": None,
        "best_test_top1": 0.1,
        "best_epoch": 1,
        "final_test_top1": 0.1,
        "total_train_s": 6.0,
        "total_eval_s": 0.8,
        "total_energy_j": None,
        "diverged_at_epoch": None,
    },
    "files": {"checkpoint": "checkpoint.pt", "epoch_log": "epochs.jsonl"},
}


def test_error_names_the_json_path(tmp_path):
    run = {**RUN, "epochs": [EPOCH] * 3 + [{**EPOCH, "train_loss": "x"}]}
    message = error_of(tmp_path / "result.json", make_result(training={"runs": [RUN, run]}))
    assert message.startswith(
        f"{tmp_path / 'result.json'}: training.runs[1].epochs[3].train_loss: "
    )
    assert message.endswith("got 'x'")


def test_epoch_record_names_the_bad_key():
    with pytest.raises(ValidationError, match="train_loss"):
        EpochRecord.model_validate({**EPOCH, "train_loss": "x"})
    with pytest.raises(ValidationError, match="energy_method"):
        EpochRecord.model_validate({**EPOCH, "energy_method": "guessed"})
    with pytest.raises(ValidationError, match=r"NaN|finite"):
        EpochRecord.model_validate({**EPOCH, "train_s": float("nan")})
    assert EpochRecord.model_validate(EPOCH).images_per_s == 170.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "bake"}, "kind: Input should be"),
        ({"seed": "zero"}, "seed: Input should be a valid integer"),
        ({"created": "yesterday"}, "created: expected an ISO-8601 date-time"),
        ({"created": "2025-01-02"}, "created: expected an ISO-8601 date-time, not a date"),
        ({"environment": {"python": {"version": "3"}, "cpu": {}}}, "environment.versions: missing"),
        ({"trainig": {}}, "trainig: unknown key"),
        ({"command": "resnest-bench"}, "command: Input should be a valid list"),
    ],
)
def test_invalid_results_are_refused(tmp_path, change, message):
    assert message in error_of(tmp_path / "result.json", make_result(**change))


def test_round_trip(tmp_path):
    path = tmp_path / "result.json"
    result = RunResult.model_validate(make_result(training={"runs": [RUN], "transfer": RUN}))
    write_result(path, result)
    assert read_result(path) == result
    written = json.loads(path.read_text())
    assert list(written) == list(RunResult.model_fields)  # key order kept
    assert written["schema_version"] == RESULT_VERSION


def test_models_are_frozen_and_forbid_unknown_keys():
    stats = Stats.from_samples([1.0, 2.0, 3.0])
    with pytest.raises(ValidationError):
        stats.n = 5
    with pytest.raises(ValidationError, match="extra"):
        Target(target="t", runtime="r", artifact="a", status="ok", colour="red")


def test_sections_are_optional(tmp_path):
    path = tmp_path / "result.json"
    base = make_result()
    del base["training"]
    path.write_text(json.dumps(base))
    assert read_result(path).training is None


def test_version_1_files_load_and_migrate(tmp_path):
    path = tmp_path / "result.json"
    v1 = make_result(
        schema_version=1,
        config={
            "suite": "tiny",
            "suite_file": "tiny.toml",
            "quick": False,
            "settings": {"data": {"train_subset": 8}},
            "dataset_override": "synthetic",
            "checkpoint": None,
            "device": "cpu",
        },
    )
    path.write_text(json.dumps(v1))
    result = read_result(path)
    assert result.schema_version == RESULT_VERSION
    assert result.config.settings["data"] == {"train_subset": 8, "dataset": "synthetic"}


def test_environment_reads_gpu_fields_by_name():
    env = Environment.model_validate(
        {
            **ENVIRONMENT,
            "gpu": {"name": "H100", "driver_version": "550.1", "cuda_version": "12.4"},
        }
    )
    assert env.gpu.driver_version == "550.1" and env.gpu.cudnn_version is None


def test_read_missing_not_json_not_ours(tmp_path):
    with pytest.raises(BenchError, match="result file not found"):
        read_result(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BenchError, match="is not valid JSON"):
        read_result(bad)
    for foreign in ([1, 2], {"kind": "train"}, {"schema_version": 1}, {"schema_version": "1"}):
        other = tmp_path / "other.json"
        other.write_text(json.dumps(foreign))
        with pytest.raises(BenchError, match="is not a resnest-bench result"):
            read_result(other)


def test_read_newer_version_says_upgrade(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(make_result(schema_version=RESULT_VERSION + 2)))
    with pytest.raises(BenchError) as info:
        read_result(path)
    assert str(info.value) == (
        f"result.json has schema_version {RESULT_VERSION + 2}; "
        f"this resnest-bench reads up to {RESULT_VERSION}: upgrade resnest-bench"
    )


def test_stats_from_samples_and_scaled():
    stats = Stats.from_samples([4.0, 1.0, 3.0, 2.0])
    assert (stats.n, stats.median, stats.min, stats.max) == (4, 2.5, 1.0, 4.0)
    ms = stats.scaled(1e3)
    assert ms.median == 2500.0 and ms.n == 4 and ms.cv == stats.cv
    with pytest.raises(BenchError, match="no timing samples"):
        Stats.from_samples([])


def test_results_import_neither_torch_nor_numpy():
    code = (
        "import sys, resnest_bench.harness.results as r, resnest_bench.harness.results.training, "
        "resnest_bench.harness.results.deployment; "
        "bad = {'torch', 'numpy', 'onnxruntime'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_states_gpu_driver_cuda_and_cudnn():
    """The report once read keys the fingerprint never wrote (driver, cuda, cudnn) and printed
    None; it now reads the typed fields."""
    from resnest_bench.harness.report.run import environment_lines

    gpu = {
        "name": "NVIDIA H100",
        "compute_capability": "9.0",
        "driver_version": "550.54",
        "cuda_version": "12.4",
        "cudnn_version": 90100,
    }
    lines = environment_lines(Environment.model_validate({**ENVIRONMENT, "gpu": gpu}))
    (line,) = [line for line in lines if line.startswith("- GPU:")]
    assert "driver 550.54, CUDA 12.4, cuDNN 90100" in line and "None" not in line


def test_delegate_coverage_round_trips_and_renders() -> None:
    from resnest_bench.harness.report.deployment import coverage_table
    from resnest_bench.harness.results.deployment import Deployment

    int8 = {
        **{"path": "m.pte", "size_bytes": 1, "variant": "none", "settings": {"method": "pt2e"}},
        **{"fp32_top1": 90.0, "int8_top1": 89.8, "drop_pts": 0.2, "max_drop_pts": 1.0},
        **{"within_limit": True, "calibration_images": 8, "heldout_images": 8},
        **{"excluded_nodes": [], "attempts": []},
    }
    cover = {"delegate": "XNNPACK", "delegated_ops": 40, "total_ops": 50, "fallback": {"mean": 9}}
    converted = {
        **{"version": "1.5.1", "fp32_path": "m.pte", "fp32_size_bytes": 1, "fp32_top1": 90.0},
        **{"int8": int8, "coverage": {"executorch_fp32": cover}},
    }
    deployment = Deployment.model_validate(
        {
            "environment": {"usable_cpus": 1, "threads": 1, "cgroup": {}},
            "artifacts": {"files": {}, "sizes_bytes": {}, "executorch": converted},
            "targets": [],
            "demo": {"index": 0, "label": "0", "classes": ["0"], "probs": {}},
        }
    )
    again = Deployment.model_validate_json(deployment.model_dump_json())
    assert again == deployment
    assert again.artifacts.executorch.coverage["executorch_fp32"].fraction == 0.8
    assert again.artifacts.int8_records() == [again.artifacts.executorch.int8]
    assert "| executorch_fp32 | XNNPACK | 40/50 | 80.0% | mean x9 |" in coverage_table(again)
