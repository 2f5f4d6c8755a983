"""Deploy on the tiny model: every field filled, bad input refused, nothing half-made."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.artifacts import ARTIFACTS
from resnest_bench.harness.config import DeploySection, TimingSection
from resnest_bench.harness.data import load_dataset
from resnest_bench.harness.deploy import run_deploy
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.export import ALWAYS_BUILT, build_artifacts
from resnest_bench.harness.export import onnx as build_onnx
from resnest_bench.harness.export.gate import GateData
from resnest_bench.harness.export.int8_schemes import schemes_for_this_cpu
from resnest_bench.harness.measure import DEMO_INDEX
from resnest_bench.harness.report.deployment import deployment_section
from resnest_bench.harness.results.deployment import ArtifactsRecord
from resnest_bench.harness.runtimes import torch_compile as torch_compile_module
from tests.measuring import measure

TINY = TimingSection(warmup=1, min_iters=3, min_seconds=0.0)
SMALL = 6


def _section(**overrides) -> DeploySection:
    base = dict(
        runtimes=("torch-eager", "ort-cpu"),
        timing=TINY,
        throughput_batches=(2, 4),
        timed_images=12,
        calibration_images=32,
        int8_max_drop=100.0,  # untrained model: accuracy is noise; the gate is tested elsewhere
        threads=1,
    )
    return DeploySection(**{**base, **overrides})


@pytest.fixture(scope="module", autouse=True)
def torchscript_only():
    """The TorchScript exporter alone: as good for these checks, and much faster than dynamo."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_onnx, "AUTO_ORDER", ("torchscript",))
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return load_dataset("synthetic", root=root, train_subset=64, test_subset=40, image_size=16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return models.create_model("resnest-tiny").eval()


@pytest.fixture(scope="module")
def result(model, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "run"
    return run_deploy(model, data, out, _section(), small_subset=SMALL), out


def test_all_fields_filled(result, data):
    res, out = result
    assert sorted(p.name for p in out.iterdir()) == sorted(ARTIFACTS[k].file for k in ALWAYS_BUILT)
    doc = res.model_dump(mode="json")
    json.dumps(doc, allow_nan=False)
    keys = [
        "config",
        "environment",
        "artifacts",
        "targets",
        "demo",
        "rounds",
        "host",
        "data",
        "crosscheck",
        "macs",
    ]
    assert list(doc) == keys
    assert doc["data"] is None  # which images were used: the pipeline adds it (it knows the data)
    assert doc["crosscheck"] is None  # off unless the suite asks for it
    assert doc["macs"] == 3_254_016  # resnest-tiny at 16 px (at 32: 12,973,824, `models` 0.013G)
    assert [t["target"] for t in doc["targets"]] == [
        "torch-eager:fp32",
        "ort-cpu:fp32",
        "ort-cpu:int8",
        "ort-cpu:int8-ort-format",
    ]
    for target in doc["targets"]:
        assert target["status"] == "ok", target
        missing = [
            key
            for key, value in target.items()
            if value is None
            and key not in ("reason", "flag", "speedup", "batching", "throughput_limit", "peak_pct")
        ]
        assert missing == [], (target["target"], missing)
        assert target["threads"] == 1 and target["device"] == "cpu"
        assert target["latency_ms"]["n"] >= 3 and target["latency_ms"]["median"] > 0
        assert set(target["throughput"]) == {"2", "4"}
        assert target["images_timed"] == 12 and target["images_small"] == SMALL
        assert target["images_full"] == len(data.test)
        assert target["peak_rss_bytes"] >= target["rss_before_load_bytes"] > 0
    eager, ort_fp32 = doc["targets"][0], doc["targets"][1]
    assert eager["speedup"]["median"] == 1.0 and eager["speedup"]["rounds"] == 5
    assert all(t["speedup"]["rounds"] == 5 for t in doc["targets"])
    assert len(doc["host"]["rounds"]) == 5 and doc["host"]["overall"]["seconds"] > 0
    policy = doc["environment"]["thread_policy"]  # one policy for every target, by host state
    assert policy["omp_wait_policy"] == (None if policy["ort_spinning"] else "PASSIVE")
    assert eager["agreement_top1_pct"] == 100.0 and eager["max_prob_diff"] == 0.0
    assert ort_fp32["agreement_top1_pct"] == 100.0 and ort_fp32["max_prob_diff"] < 1e-5
    sizes = doc["artifacts"]["sizes_bytes"]
    assert all(sizes[k] == (out / ARTIFACTS[k].file).stat().st_size for k in ALWAYS_BUILT)
    assert doc["artifacts"]["export"]["exporter"] == "torchscript"
    assert doc["artifacts"]["int8"]["variant"] == schemes_for_this_cpu()[0][0].name
    assert doc["environment"]["threads"] == 1 and "cgroup" in doc["environment"]


def test_demo_table_matches_reference(result, data, model):
    res, _ = result
    probs = res.demo.probs
    assert list(probs) == [t.target for t in res.targets]
    with torch.inference_mode():
        from resnest_bench.harness.data import normalize

        x = normalize(data.test.images[DEMO_INDEX : DEMO_INDEX + 1], data.mean, data.std)
        want = torch.softmax(model(x), 1)[0].numpy()
    np.testing.assert_allclose(probs["torch-eager:fp32"], want, rtol=1e-5)
    markdown = deployment_section(res)
    assert "| # | class | torch-eager:fp32 | ort-cpu:fp32 |" in markdown
    assert "| target | load s |" in markdown and "| artifact | file | MiB |" in markdown


def test_unavailable_runtime_is_skipped_with_reason(model, data, tmp_path, monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(torch_compile_module.shutil, "which", lambda _: None)  # and no compiler
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # and no executorch
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "executorch" else find_spec(name, *args),
    )
    artifacts = build_artifacts(model, data, tmp_path, _section())
    rows, *_ = measure(
        tmp_path, artifacts, data, _section(runtimes=None), small_subset=SMALL, spawn=False
    )
    skipped = {r.target: r.reason for r in rows if r.status == "skipped"}
    assert "CUDAExecutionProvider" in skipped["ort-cuda:fp32"]
    assert "TensorrtExecutionProvider" in skipped["ort-tensorrt:tf32"]
    assert "C++ compiler" in skipped["torch-compile:fp32"]
    assert "executorch is not installed" in skipped["executorch:int8"]
    assert {r.target for r in rows if r.status == "ok"} >= {"torch-eager:fp32", "ort-cpu:int8"}
    with pytest.raises(BenchError, match="'ort-cuda' is not available"):
        run_deploy(
            model, data, tmp_path / "cuda", _section(runtimes=("ort-cuda",)), small_subset=SMALL
        )
    assert not (tmp_path / "cuda").exists()


def test_unknown_runtime(model, data, tmp_path):
    with pytest.raises(ValueError, match="unknown runtime 'caffe2'"):
        _section(runtimes=("caffe2",))


def test_failed_run_leaves_nothing(model, data, tmp_path, monkeypatch):
    def broken(*_):
        raise BenchError("the int8 check failed")

    monkeypatch.setattr(GateData, "top1", broken)
    out = tmp_path / "run"
    with pytest.raises(BenchError, match="the int8 check failed"):
        run_deploy(model, data, out, _section(), small_subset=6)
    assert list(tmp_path.iterdir()) == []


def test_a_runtime_whose_build_fails_fails_its_rows_only(model, data, tmp_path, monkeypatch):
    """A converter that raises (here after writing its fp32 file) costs its own runtime's rows,
    with the reason, and leaves none of its files; ONNX Runtime and PyTorch are still measured."""
    pytest.importorskip("executorch")
    from resnest_bench.harness.export import executorch as build_executorch_module

    def broken(_model, fp32, _int8, _gate):
        fp32.write_bytes(b"half a file")
        raise RuntimeError("XNNPACK refused node 124\nsecond line")

    monkeypatch.setattr(build_executorch_module, "build_executorch", broken)
    section = _section(runtimes=("torch-eager", "ort-cpu", "executorch"), int8_max_drop=100.0)
    deployment = run_deploy(model, data, tmp_path / "run", section, small_subset=SMALL)
    reason = "executorch build failed: RuntimeError: XNNPACK refused node 124"
    assert deployment.artifacts.failed == dict.fromkeys(
        ("executorch_fp32", "executorch_int8"), reason
    )
    assert _failed(deployment.targets) == dict.fromkeys(
        ("executorch:fp32", "executorch:int8"), reason
    )
    assert {t.target for t in deployment.targets if t.ok} >= {"torch-eager:fp32", "ort-cpu:int8"}
    assert not list((tmp_path / "run").rglob("*.pte"))
    assert "executorch build failed" in deployment_section(deployment)


@pytest.mark.slow
def test_a_channels_last_model_converts_and_stays_channels_last(model, data, tmp_path):
    """The gpu suite trains channels-last; ExecuTorch's layout pass refused such weights
    (ChannelsLastTaggedReshapePass), which failed its rows after every GPU run."""
    pytest.importorskip("executorch")
    import copy

    trained = copy.deepcopy(model).to(memory_format=torch.channels_last)
    artifacts = build_artifacts(trained, data, tmp_path, _section(runtimes=("executorch",)))
    assert artifacts.failed == {}
    assert {"executorch_fp32", "executorch_int8"} <= set(artifacts.files)
    assert trained.stem[0].weight.is_contiguous(
        memory_format=torch.channels_last
    )  # a copy converts


def test_onnx_that_does_not_fit_the_data(model, data, tmp_path):
    artifacts = build_artifacts(model, data, tmp_path / "a", _section())
    bigger = load_dataset("synthetic", root=tmp_path, train_subset=16, test_subset=8, image_size=24)
    with pytest.raises(BenchError, match=r"expects input \[N, 3, 16, 16\] but the data is 3x24x24"):
        measure(tmp_path / "a", artifacts, bigger, _section(), small_subset=SMALL, spawn=False)


def _failed(targets) -> dict[str, str]:
    return {t.target: t.reason for t in targets if t.status == "failed"}


def test_missing_or_corrupt_artifact_fails_that_target_only(model, data, tmp_path):
    artifacts = build_artifacts(model, data, tmp_path, _section())
    int8_file = tmp_path / ARTIFACTS["onnx_int8"].file
    int8_file.write_bytes(b"\x00corrupt")
    rows, *_ = measure(tmp_path, artifacts, data, _section(), small_subset=SMALL, spawn=False)
    assert list(_failed(rows)) == ["ort-cpu:int8"]
    assert "corrupt" in _failed(rows)["ort-cpu:int8"]
    assert "\n" not in _failed(rows)["ort-cpu:int8"]
    assert {t.target for t in rows if t.ok} == {
        "torch-eager:fp32",
        "ort-cpu:fp32",
        "ort-cpu:int8-ort-format",
    }
    int8_file.unlink()
    rows, *_ = measure(tmp_path, artifacts, data, _section(), small_subset=SMALL, spawn=False)
    assert "not found" in _failed(rows)["ort-cpu:int8"]
    (tmp_path / ARTIFACTS["state_dict"].file).write_bytes(b"garbage")
    rows, *_ = measure(
        tmp_path,
        ArtifactsRecord(files={"state_dict": ARTIFACTS["state_dict"].file}, sizes_bytes={}),
        data,
        _section(runtimes=("torch-eager",)),
        small_subset=SMALL,
        spawn=False,
    )
    assert "corrupt" in _failed(rows)["torch-eager:fp32"]
