"""`resnest-bench doctor` and the preflight of `run`: each check on faked GPUs, drivers, NVML
and TensorRT, and the tiny smoke run for real on the CPU."""

from __future__ import annotations

import sys
from pathlib import Path

from resnest_bench.harness import accel, doctor, launcher
from resnest_bench.harness.cli import main
from resnest_bench.harness.config import load_suite, validate_suite
from resnest_bench.harness.errors import BenchError


def host(driver):
    return lambda: [launcher.HostGpu(0, "GPU", (9, 0), driver, "nvidia-smi")]


def gpu_suite(**train):
    return load_suite("gpu", quick=True, overrides={"train": train} if train else None)[0]


def test_gpu_check_reads_the_device(fake_gpu):
    fake_gpu("NVIDIA H100 80GB HBM3", (9, 0))
    check, cc = doctor.check_gpu(gpu_suite())
    assert check.status == "OK" and "sm_90" in check.detail and cc == (9, 0)


def test_no_gpu_fails_in_one_line():
    check, cc = doctor.check_gpu(gpu_suite())
    assert check.status == "FAIL" and "needs a CUDA GPU" in check.line() and cc is None
    assert "\n" not in check.line()


def test_driver_against_image(monkeypatch):
    assert doctor.check_driver((9, 0), host((580, 95, 5))).detail.endswith("bench-gpu serves it")
    assert "bench-gpu-volta" in doctor.check_driver((9, 0), host((535, 104, 5))).detail
    too_old = doctor.check_driver((7, 5), host((418, 67)))
    assert too_old.status == "FAIL" and "418.67 is too old" in too_old.detail
    monkeypatch.setenv("RESNEST_BENCH_IMAGE_TAG", "0.1.0-cu130")  # inside the CUDA 13 image
    inside = doctor.check_driver((9, 0), host((535, 104, 5)))
    assert inside.status == "FAIL" and "needs driver >= 580.65.06" in inside.detail
    assert "use bench-gpu-volta" in inside.detail
    unknown = doctor.check_driver((9, 0), lambda: (_ for _ in ()).throw(BenchError("no smi")))
    assert unknown.status == "WARN"


def test_precision_against_capability():
    assert doctor.check_precision(gpu_suite(precision="bf16"), (7, 5)).status == "FAIL"
    ok = doctor.check_precision(gpu_suite(), (7, 0))
    assert ok.status == "OK" and "train fp16" in ok.detail and "transfer fp16" in ok.detail


def test_nvml_missing_is_said_once_as_a_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    check = doctor.check_nvml()
    assert check.status == "WARN" and "nvidia-ml-py" in check.detail


def test_tensorrt_listed_but_not_loadable_is_a_warning(monkeypatch):
    # This CPU onnxruntime has no TensorRT: a real trial session must fail.
    from resnest_bench.harness.runtimes.ort import provider_trial

    assert provider_trial("TensorrtExecutionProvider") is not None
    import onnxruntime

    listed = [*onnxruntime.get_available_providers(), "TensorrtExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    check = doctor.check_tensorrt(gpu_suite())
    assert check.status == "WARN" and "ort-tensorrt is skipped" in check.detail


def test_compile_without_a_c_compiler_fails(monkeypatch):
    monkeypatch.setattr(accel, "c_compiler", lambda: None)
    check = doctor.check_compiler(gpu_suite(compile=True), (9, 0))
    assert check.status == "FAIL" and "C compiler" in check.detail
    assert doctor.check_compiler(gpu_suite(), (9, 0)).status == "SKIP"


def test_disk_and_data_cache(monkeypatch, tmp_path):
    suite = gpu_suite()
    assert doctor.disk_needed(suite) > 3 * 27e6 * 8  # three ResNeSt-50 training runs
    assert doctor.check_disk(suite, tmp_path / "reports").status == "OK"
    usage = type("Usage", (), {"free": 10 * 2**20})
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: usage)
    assert doctor.check_disk(suite, tmp_path).status == "FAIL"
    assert doctor.check_data_cache(tmp_path / "data").status == "OK"
    assert not (tmp_path / "data").exists()  # checking creates nothing
    (tmp_path / "file").write_text("x")
    assert doctor.check_data_cache(tmp_path / "file" / "data").status == "FAIL"


def test_run_refuses_with_the_failing_line(fake_gpu, tmp_path, capsys):
    fake_gpu("Tesla T4", (7, 5))
    argv = ["run", "gpu", "--quick", "--precision", "bf16", "--reports", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FAIL precision: train.precision: bf16 needs" in err
    assert not any(tmp_path.iterdir())


def test_doctor_command_exit_code(tmp_path, capsys):
    common = ["--no-smoke", "--reports", str(tmp_path), "--data-dir", str(tmp_path / "d")]
    assert main(["doctor", "gpu", *common]) == 1  # no GPU here
    assert main(["doctor", "gpu", "--device", "cpu", *common]) == 0
    out = capsys.readouterr().out
    assert "FAIL GPU" in out and "SKIP GPU: suite device 'cpu'" in out


TINY = {
    "name": "tiny",
    "device": "cpu",
    "steps": ["train", "transfer", "deploy"],
    "deploy": {"runtimes": ["torch-eager", "ort-cpu"]},
}


def test_smoke_suite_is_two_steps_of_the_tiny_model():
    small = doctor.smoke_suite(gpu_suite(compile=True))
    assert small.model.names == ("resnest-tiny",) and small.device == "cuda"
    assert small.data.train_subset // small.train.batch_size == 2
    assert small.transfer.epochs == small.train.epochs == 1 and small.train.compile


def test_smoke_runs_every_stage_and_reports_a_failure(monkeypatch):
    suite = validate_suite(TINY, "tiny")
    check = doctor.smoke(suite)
    assert check.status == "OK" and "train, transfer, deploy" in check.detail
    from resnest_bench.harness import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("data broke\nsecond line")

    monkeypatch.setattr(pipeline, "load_dataset", broken)
    failed = doctor.smoke(suite)
    assert failed.status == "FAIL" and failed.detail == "RuntimeError: data broke"


def test_doctor_needs_no_gpu_for_a_cpu_suite(tmp_path):
    checks = doctor.quick_checks(validate_suite(TINY, "tiny"), tmp_path, Path(tmp_path))
    assert not doctor.failures(checks)
