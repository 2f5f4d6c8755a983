"""`resnest-bench plan`: the gpu suite resolved for every GPU in the table, and for a faked
present GPU, without a GPU (named GPUs come from harness.gpu.catalog; present ones are
monkeypatched)."""

from __future__ import annotations

import json

import pytest
import torch

from resnest_bench.harness.cli import main
from resnest_bench.harness.config import load_suite
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.gpu import catalog as gpus
from resnest_bench.harness.gpu import launcher
from resnest_bench.harness.gpu.plan import Plan, make_plan

# name -> (precision auto picks, image service, cuDNN on, torch.compile runs, ort-cuda runs,
# an estimate). Written out, not read from harness.gpu.catalog: precision from each card's tensor
# cores (bf16 from Ampere sm_80, fp16 on Volta/Turing); image from the kernels the wheels carry
# (cu130: sm_75+, so P100/V100 get cu126; only cu118 has sm_37); compile needs Triton's sm_70+
# and the CPU onnxruntime of the Kepler image has no CUDA; an estimate needs a datasheet peak.
EXPECTED = {
    "K80": ("fp32", "bench-gpu-kepler", False, False, False, True),
    "P100": ("fp32", "bench-gpu-volta", True, False, True, True),
    "V100": ("fp16", "bench-gpu-volta", True, True, True, True),
    "T4": ("fp16", "bench-gpu", True, True, True, True),
    "A10": ("bf16", "bench-gpu", True, True, True, True),
    "A10G": ("bf16", "bench-gpu", True, True, True, False),
    "RTX 3090": ("bf16", "bench-gpu", True, True, True, False),
    "RTX 4090": ("bf16", "bench-gpu", True, True, True, False),
    "A100": ("bf16", "bench-gpu", True, True, True, True),
    "L4": ("bf16", "bench-gpu", True, True, True, True),
    "L40S": ("bf16", "bench-gpu", True, True, True, True),
    "H100 SXM": ("bf16", "bench-gpu", True, True, True, True),
    "H100 PCIe": ("bf16", "bench-gpu", True, True, True, True),
    "H100 NVL": ("bf16", "bench-gpu", True, True, True, True),
    "H100 MIG 1g.10gb": ("bf16", "bench-gpu", True, True, True, True),
    "H800": ("bf16", "bench-gpu", True, True, True, False),
    "GH200": ("bf16", "bench-gpu", True, True, True, False),
    "H200": ("bf16", "bench-gpu", True, True, True, True),
    "B200": ("bf16", "bench-gpu", True, True, True, True),  # ort-cuda: 1.28.0 has sm_100
    "RTX PRO 6000": ("bf16", "bench-gpu", True, True, True, False),
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
    precision, service, cudnn, compiles, ort_cuda, estimated = EXPECTED[name]
    plan = make_plan(gpu_suite, gpu=name)
    assert [s.precision for s in plan.steps] == [precision, precision]
    # the gpu suite's compile = "auto" with CUDA graphs: on where Triton runs the card
    assert [(s.compile, s.compile_mode) for s in plan.steps] == 2 * [
        (True, "reduce-overhead") if compiles else (False, None)
    ]
    assert all(s.problem is None for s in plan.steps)
    assert plan.image.service == service and plan.image_problem is None
    assert plan.cudnn is cudnn
    targets = _targets(plan)
    assert targets["torch-eager"] is None and targets["ort-cpu"] is None
    assert targets["ort-tensorrt"] is not None  # never installed in an image
    assert (targets["torch-compile"] is None) is compiles
    assert (targets["ort-cuda"] is None) is ort_cuda
    assert (plan.estimate_s is not None) is estimated
    text = plan.to_markdown()
    assert plan.image.tag in text and f"{precision} (auto: " in text


def test_kepler_and_pascal_refusals_say_why(gpu_suite):
    targets = _targets(make_plan(gpu_suite, gpu="K80"))
    assert "CPU-only onnxruntime" in targets["ort-cuda"]
    assert "compute capability >= 7.0" in targets["torch-compile"]
    assert "sm_60" in _targets(make_plan(gpu_suite, gpu="P100"))["torch-compile"]


@pytest.mark.parametrize("name", ["P100", "V100"])
def test_pascal_volta_on_an_r580_driver_get_the_cu126_image(gpu_suite, name):
    """A new driver runs CUDA 13, but the cu130 torch has no sm_60/sm_70 kernels."""
    plan = make_plan(gpu_suite, gpu=name, driver="580.95.05")
    assert plan.image.service == "bench-gpu-volta" and plan.image.tag.endswith("-cu126")


def test_b200_ort_cuda_follows_the_wheels_kernels(gpu_suite):
    from dataclasses import replace

    from resnest_bench.harness.gpu.kernels import Kernels
    from resnest_bench.harness.runtimes.base import Machine
    from resnest_bench.harness.runtimes.ort import OrtCuda

    plan = make_plan(gpu_suite, gpu="B200")
    assert plan.image.onnxruntime == "onnxruntime-gpu 1.28.0"
    assert _targets(plan)["ort-cuda"] is None
    # onnxruntime-gpu 1.31.1 as read from its libonnxruntime_providers_cuda.so: no sm_100, no PTX
    ort_1_31 = Kernels(frozenset({75, 80, 86, 89, 90, 120}), frozenset())
    image = replace(plan_image("bench-gpu"), onnxruntime="onnxruntime-gpu 1.31.1")
    machine = Machine(cc=(10, 0), image=replace(image, ort_kernels=ort_1_31), missing_compilers=())
    reason = OrtCuda.plan_skip_reason(machine)
    assert reason == (
        "onnxruntime-gpu 1.31.1 in bench-gpu has no kernels for sm_100 "
        "(sm_75, sm_80, sm_86, sm_89, sm_90, sm_120; no PTX)"
    )


def plan_image(service):
    return next(i for i in gpus.IMAGES if i.service == service)


def test_a_mig_slice_is_planned_as_its_share(gpu_suite):
    full, mig = make_plan(gpu_suite, gpu="H100"), make_plan(gpu_suite, gpu="H100 MIG 1g.10gb")
    assert mig.gpu.mig == "1g.10gb" and mig.gpu.memory_gib == 10
    assert mig.gpu.peak_flops["bf16"] == pytest.approx(989e12 / 7)
    assert mig.gpu.memory_gbps == pytest.approx(3350 / 8)  # 10 of the card's 80 GB
    whole, part = full.steps[0].epoch_estimates, mig.steps[0].epoch_estimates
    for name in whole:  # a slice launches as fast, computes at 1/7 and reads at 1/8
        assert part[name].launch == pytest.approx(whole[name].launch)
        assert part[name].compute == pytest.approx(7 * whole[name].compute)
        assert part[name].memory == pytest.approx(8 * whole[name].memory)
    assert "MIG slice 1g.10gb" in mig.to_markdown()


def test_an_unknown_present_gpu_is_planned_by_its_capability(gpu_suite, monkeypatch, fake_gpu):
    fake_present(monkeypatch, fake_gpu, "NVIDIA Future X1", (12, 0), (590, 10, 1))
    plan = make_plan(gpu_suite)
    assert plan.image.service == "bench-gpu" and plan.gpu.peak_flops == {}
    assert plan.estimate_s is None
    assert "Peak FLOP/s or memory bandwidth: unknown" in plan.to_markdown()


def test_estimate_follows_peak_and_precision(gpu_suite):
    h100, v100 = make_plan(gpu_suite, gpu="H100"), make_plan(gpu_suite, gpu="V100")
    assert h100.estimate_s < v100.estimate_s
    train = h100.steps[0]
    assert set(train.flops_per_epoch) == {"resnest50d", "resnest50d-basic"}
    # the rule of thumb, 3 x 2 x MACs x 50,000 images (ImageNet stem at 32x32: ~0.11 GMACs),
    # against forward and backward counted op by op
    assert train.flops_per_epoch["resnest50d"] == pytest.approx(6 * 0.11e9 * 50_000, rel=0.2)


def test_driver_picks_an_older_image_or_names_the_one_needed(gpu_suite):
    assert make_plan(gpu_suite, gpu="T4", driver="535.104.05").image.service == "bench-gpu-volta"
    # 525.60 names the 525.60.x branch: not older than 525.60.13 (it sent an H100 to Kepler)
    assert make_plan(gpu_suite, gpu="H100", driver="525.60").image.service == "bench-gpu-volta"
    b200 = make_plan(gpu_suite, gpu="B200", driver="570.86.15")
    assert b200.image is None and "install >= 580.65.06 for bench-gpu" in b200.image_problem
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
