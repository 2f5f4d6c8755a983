"""Accel on faked GPUs: precision resolved from the card, cuDNN off on Kepler, compile needs cc.

torch's device queries are monkeypatched, so each generation's path runs on a CPU-only torch.
"""

from __future__ import annotations

import pytest
import torch

from resnest_bench.harness.cli import build_parser
from resnest_bench.harness.config import load_suite
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.flags import overrides_from
from resnest_bench.harness.gpu import accel as accel_mod
from resnest_bench.harness.gpu.accel import Accel

CUDA = torch.device("cuda", 0)


@pytest.mark.parametrize(
    ("name", "cc", "precision", "cudnn", "scaled"),
    [
        ("Tesla K80", (3, 7), "fp32", False, False),
        ("Tesla P100-PCIE-16GB", (6, 0), "fp32", True, False),
        ("Tesla V100-SXM2-16GB", (7, 0), "fp16", True, True),
        ("Tesla T4", (7, 5), "fp16", True, True),
        ("NVIDIA A100-SXM4-80GB", (8, 0), "bf16", True, False),
        ("NVIDIA H100 80GB HBM3", (9, 0), "bf16", True, False),
        ("NVIDIA B200", (10, 0), "bf16", True, False),
    ],
)
def test_auto_precision_is_resolved_from_the_device(fake_gpu, name, cc, precision, cudnn, scaled):
    fake_gpu(name, cc)
    accel = Accel(CUDA, precision="auto")
    info = accel.describe()
    assert accel.precision == info.precision == precision
    assert info.precision_reason.startswith(f"auto: sm_{cc[0]}{cc[1]}")
    assert info.cudnn_enabled is cudnn and info.cudnn_benchmark is cudnn
    assert (accel.precision == "fp16") is scaled  # grad_scaler() is enabled for fp16 only
    assert info.peak_flops is not None and info.device_name == name


def test_explicit_precision_is_kept_and_checked(fake_gpu):
    fake_gpu("Tesla T4", (7, 5))
    assert Accel(CUDA, precision="fp32").describe().precision_reason == "as requested"
    with pytest.raises(BenchError, match=r"Tesla T4: bf16 needs an Ampere.*sm_75: use fp16"):
        Accel(CUDA, precision="bf16")


def test_compile_needs_volta_and_both_compilers(fake_gpu, monkeypatch):
    fake_gpu("Tesla P100-PCIE-16GB", (6, 0))
    with pytest.raises(BenchError, match=r"compute capability >= 7\.0"):
        Accel(CUDA, compile=True)
    fake_gpu("NVIDIA H100 80GB HBM3", (9, 0))
    monkeypatch.setattr(accel_mod, "missing_compilers", lambda: ("g++",))
    with pytest.raises(BenchError, match="needs g\\+\\+") as info:
        Accel(CUDA, compile=True)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(accel_mod, "missing_compilers", lambda: ())
    assert Accel(CUDA, compile=True, compile_mode="reduce-overhead").compile


def test_compile_auto_is_resolved_from_the_device(fake_gpu, monkeypatch):
    monkeypatch.setattr(accel_mod, "missing_compilers", lambda: ())
    assert Accel(torch.device("cpu"), compile="auto").compile is False
    fake_gpu("Tesla P100-PCIE-16GB", (6, 0))
    pascal = Accel(CUDA, compile="auto")
    assert pascal.compile is False and "needs compute capability >= 7.0" in pascal.compile_reason
    fake_gpu("Tesla V100-SXM2-16GB", (7, 0))
    volta = Accel(CUDA, compile="auto", compile_mode="reduce-overhead")
    assert volta.compile is True and volta.describe().compile_mode == "reduce-overhead"


def test_missing_compilers_looks_on_path(monkeypatch, tmp_path):
    """The images once had gcc without g++: inductor then failed inside the run."""
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert accel_mod.missing_compilers() == ("gcc", "g++")
    gcc = tmp_path / "gcc"
    gcc.write_text("#!/bin/sh\n")
    gcc.chmod(0o755)
    assert accel_mod.missing_compilers() == ("g++",)
    monkeypatch.setenv("CXX", "/opt/clang++")
    assert accel_mod.missing_compilers() == ()


@pytest.mark.parametrize(
    ("name", "cc", "cudnn"), [("Tesla K80", (3, 7), False), ("H100", (9, 0), True)]
)
def test_deploy_workers_set_cudnn_and_fp32_themselves(fake_gpu, name, cc, cudnn):
    """A spawned worker starts from torch's defaults: cuDNN on (no sm_37 kernels in cuDNN 9)
    and cuDNN TF32 allowed (an "fp32" row on sm_80+ would be TF32)."""
    assert torch.backends.cudnn.enabled and torch.backends.cudnn.allow_tf32  # torch's defaults
    fake_gpu(name, cc)
    try:
        accel_mod.configure_inference_backends("cuda:0")
        assert torch.backends.cudnn.enabled is cudnn
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.enabled = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = False


def test_kepler_configures_cudnn_off(fake_gpu):
    fake_gpu("Tesla K80", (3, 7))
    try:
        Accel(CUDA).configure_backends()
        assert torch.backends.cudnn.enabled is False
    finally:
        torch.backends.cudnn.enabled = True


def test_cpu_auto_is_fp32():
    accel = Accel(torch.device("cpu"), precision="auto")
    assert accel.precision == "fp32" and accel.describe().cudnn_enabled


def _overrides(*argv: str) -> dict:
    return overrides_from(build_parser().parse_args(list(argv)))


def test_run_speed_flags_reach_train_and_transfer():
    over = _overrides(
        "run", "gpu", "--precision", "fp16", "--channels-last", "--torchcompile",
        "--compile-mode", "max-autotune", "--epochs", "3",
    )  # fmt: skip
    speed = {
        "precision": "fp16",
        "channels_last": True,
        "compile": True,
        "compile_mode": "max-autotune",
    }
    assert over["train"] == {**speed, "epochs": 3}
    assert over["transfer"] == speed  # the recipe (epochs) stays the train section's
    suite, _ = load_suite("gpu", overrides=over)
    assert suite.transfer.precision == "fp16" and suite.transfer.compile_mode == "max-autotune"
    assert _overrides("run", "gpu", "--amp")["transfer"] == {"precision": "fp16"}


def test_gpu_suite_defaults_to_auto_precision():
    suite, _ = load_suite("gpu")
    assert suite.train.precision == suite.transfer.precision == "auto"
