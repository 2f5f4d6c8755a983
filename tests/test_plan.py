"""`resnest-bench plan`: the gpu suite resolved for every GPU in the table, and for a faked
present GPU, without a GPU (named GPUs come from harness.gpus; present ones are monkeypatched)."""

from __future__ import annotations

import json

import pytest
import torch

from resnest_bench.harness import gpus, launcher
from resnest_bench.harness.cli import main
from resnest_bench.harness.config import load_suite
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.plan import Plan, make_plan

# name -> (precision auto picks, image service, cuDNN on)
EXPECTED = {
    "K80": ("fp32", "bench-gpu-kepler", False),
    "P100": ("fp32", "bench-gpu-volta", True),
    "V100": ("fp16", "bench-gpu-volta", True),
    "T4": ("fp16", "bench-gpu", True),
    "A10": ("bf16", "bench-gpu", True),
    "A100": ("bf16", "bench-gpu", True),
    "L4": ("bf16", "bench-gpu", True),
    "L40S": ("bf16", "bench-gpu", True),
    "H100 SXM": ("bf16", "bench-gpu", True),
    "H100 PCIe": ("bf16", "bench-gpu", True),
    "H100 NVL": ("bf16", "bench-gpu", True),
    "H200": ("bf16", "bench-gpu", True),
    "B200": ("bf16", "bench-gpu", True),
}


@pytest.fixture(scope="module")
def gpu_suite():
    return load_suite("gpu")[0]


def _targets(plan: Plan) -> dict[str, str | None]:
    return {t.runtime: (None if t.run else t.reason) for t in plan.targets}


def test_v100_json_shows_fp16_cu126_and_tensorrt_skipped(capsys):
    assert main(["plan", "gpu", "--gpu", "V100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["step"]: s["precision"] for s in out["steps"]} == {
        "train": "fp16",
        "transfer": "fp16",
    }
    assert out["image"]["service"] == "bench-gpu-volta"
    assert out["image"]["tag"].endswith("-cu126") and out["image"]["cuda"] == "12.6"
    (trt,) = [t for t in out["targets"] if t["runtime"] == "ort-tensorrt"]
    assert trt["run"] is False
    assert trt["reason"] == "TensorRT libraries are not installed in the image"
    assert Plan.model_validate(out).gpu.name == "V100 SXM2"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_gpu_in_the_table(gpu_suite, name):
    precision, service, cudnn = EXPECTED[name]
    plan = make_plan(gpu_suite, gpu=name)
    assert [s.precision for s in plan.steps] == [precision, precision]
    assert all(s.problem is None for s in plan.steps)
    assert plan.image.service == service and plan.image_problem is None
    assert plan.cudnn is cudnn
    targets = _targets(plan)
    assert targets["torch-eager"] is None and targets["ort-cpu"] is None
    assert targets["ort-tensorrt"] is not None  # never installed in an image
    if service == "bench-gpu-kepler":
        assert "CPU-only onnxruntime" in targets["ort-cuda"]
        assert "compute capability >= 7.0" in targets["torch-compile"]
    else:
        assert targets["ort-cuda"] is None
        assert targets["ort-tensorrt"] == "TensorRT libraries are not installed in the image"
    assert (targets["torch-compile"] is None) is (gpus.find_gpu(name).compute_capability >= (7, 0))
    assert plan.estimate_s > 0 and "MFU" in plan.estimate_assumption
    text = plan.to_markdown()
    assert plan.image.tag in text and f"{precision} (auto: " in text


def test_estimate_follows_peak_and_precision(gpu_suite):
    h100, v100 = make_plan(gpu_suite, gpu="H100"), make_plan(gpu_suite, gpu="V100")
    assert h100.estimate_s < v100.estimate_s
    train = h100.steps[0]
    assert set(train.flops_per_epoch) == {"resnest50d", "resnest50d-basic"}
    # 3 x 2 x MACs x 50,000 images; ResNeSt-50 with the ImageNet stem at 32x32: ~0.11 GMACs
    assert train.flops_per_epoch["resnest50d"] == pytest.approx(6 * 0.11e9 * 50_000, rel=0.05)


def test_driver_picks_an_older_image_or_names_the_one_needed(gpu_suite):
    assert make_plan(gpu_suite, gpu="T4", driver="535.104.05").image.service == "bench-gpu-volta"
    old = make_plan(gpu_suite, gpu="T4", driver="418.67")
    assert old.image is None and "418.67 is too old for sm_75" in old.image_problem
    assert "NONE: NVIDIA driver 418.67" in old.to_markdown()
    with pytest.raises(BenchError, match="--driver"):
        make_plan(gpu_suite, gpu="T4", driver="latest")
    with pytest.raises(BenchError, match="unknown GPU 'GB200'; known: K80"):
        make_plan(gpu_suite, gpu="GB200")


def test_bf16_asked_on_volta_is_flagged_before_the_run(gpu_suite):
    suite = load_suite("gpu", overrides={"train": {"precision": "bf16", "compile": True}})[0]
    train = make_plan(suite, gpu="V100").steps[0]
    assert train.precision == "bf16" and "use fp16" in train.problem
    assert make_plan(suite, gpu="H100").steps[0].problem is None  # the image has gcc


def fake_present(monkeypatch, fake_gpu, name, cc, driver=None):
    fake_gpu(name, cc)
    host = [launcher.HostGpu(0, name, cc, driver, "nvidia-smi")] if driver else []

    def query():
        if not host:
            raise BenchError("no NVIDIA GPU here: nvidia-smi is not installed")
        return host

    monkeypatch.setattr(launcher, "query_gpus", query)


def test_present_gpu_from_torch_driver_from_nvidia_smi(gpu_suite, monkeypatch, fake_gpu):
    fake_present(monkeypatch, fake_gpu, "Tesla T4", (7, 5), (535, 104, 5))
    plan = make_plan(gpu_suite)
    assert plan.gpu.name == "Tesla T4" and plan.gpu.source == "present (torch)"
    assert plan.gpu.driver == "535.104.05" and plan.image.service == "bench-gpu-volta"
    assert plan.steps[0].precision == "fp16"


def test_present_kepler_without_torch_cuda_uses_the_launcher(gpu_suite, monkeypatch, fake_gpu):
    fake_present(monkeypatch, fake_gpu, "Tesla K80", (3, 7), (470, 256, 2))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan = make_plan(gpu_suite)
    assert plan.gpu.source == "present (nvidia-smi)" and plan.image.service == "bench-gpu-kepler"
    assert not plan.cudnn and plan.steps[0].precision == "fp32"


def test_no_gpu_says_so_and_cpu_suite_plans_on_cpu(gpu_suite, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(launcher, "query_gpus", lambda: [])
    plan = make_plan(gpu_suite)
    assert plan.gpu is None and "needs a GPU" in plan.image_problem
    assert _targets(plan)["ort-cuda"] == "no GPU"
    cpu = make_plan(load_suite("cpu-runtime", quick=True)[0], quick=True)
    assert cpu.image_problem is None and cpu.steps[0].precision == "fp32"
    assert cpu.estimate_s is None
