"""`resnest-bench doctor` and the preflight of `run`: each check on faked GPUs, drivers, NVML
and TensorRT, and the tiny smoke run for real on the CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resnest_bench.harness import doctor
from resnest_bench.harness.cli import main
from resnest_bench.harness.config import load_suite, validate_suite
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.gpu import accel, launcher


def host(driver, name="NVIDIA H100 80GB HBM3", cc=(9, 0)):
    return [launcher.HostGpu(0, name, cc, driver, "nvidia-smi")]


# torch.cuda.get_arch_list() of PyPI's torch 2.13.0 (the cu130 build), as read from its wheel
CU130_ARCHES = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


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
    branch = doctor.check_driver((9, 0), host((525, 60)))  # 525.60.x, not older than 525.60.13
    assert branch.status == "OK" and branch.detail == "driver 525.60: bench-gpu-volta serves it"
    monkeypatch.setenv("RESNEST_BENCH_IMAGE_TAG", "0.1.0-cu130")  # inside the CUDA 13 image
    inside = doctor.check_driver((9, 0), host((535, 104, 5)))
    assert inside.status == "FAIL" and "needs driver >= 580.65.06" in inside.detail
    assert "use bench-gpu-volta" in inside.detail
    unknown = doctor.check_driver((9, 0), "no NVIDIA GPU here: nvidia-smi is not installed")
    assert unknown.status == "WARN"


def test_a_driver_too_old_for_torch_names_the_image_not_the_driver(monkeypatch):
    """torch (this CPU build, or a cu130 build on an R535 driver) sees no GPU; nvidia-smi
    still lists it, and the failure says which image that driver runs."""
    monkeypatch.setenv("RESNEST_BENCH_IMAGE_TAG", "0.1.0-cu130")
    check, cc = doctor.check_gpu(gpu_suite(), host((535, 104, 5)))
    assert check.status == "FAIL" and cc is None
    assert "torch sees no GPU, the driver lists NVIDIA H100 80GB HBM3 (sm_90" in check.detail
    assert "needs driver >= 580.65.06, the host has 535.104.05: use bench-gpu-volta" in check.detail
    old, _ = doctor.check_gpu(gpu_suite(), host((418, 67), "Tesla T4", (7, 5)))
    assert "418.67 is too old for sm_75: install >= 450.80.02" in old.detail
    fine, _ = doctor.check_gpu(gpu_suite(), host((580, 95, 5)))  # driver fine: torch's reason
    assert "bench-gpu serves it; device 'cuda' needs a CUDA GPU" in fine.detail
    none, _ = doctor.check_gpu(gpu_suite(), "no NVIDIA GPU here: nvidia-smi is not installed")
    assert "needs a CUDA GPU" in none.detail and "nvidia-smi is not installed" in none.detail


def test_kernels_of_the_torch_build_against_the_card(monkeypatch):
    monkeypatch.setenv("RESNEST_BENCH_IMAGE_TAG", "0.1.0-cu130")
    for cc in ((6, 0), (7, 0)):  # P100, V100: no sm_60/sm_70 cubins and no PTX in cu130
        check = doctor.check_kernels(cc, CU130_ARCHES)
        assert check.status == "FAIL" and check.detail.endswith("use bench-gpu-volta")
    for cc in ((7, 5), (8, 9), (9, 0), (10, 0), (12, 0)):
        assert doctor.check_kernels(cc, CU130_ARCHES).status == "OK"
    assert doctor.check_kernels((9, 0)).status == "SKIP"  # this CPU torch lists none


def test_image_kernel_table_against_the_installed_libraries(monkeypatch):
    assert doctor.check_image_kernels().status == "SKIP"  # not in a GPU image
    # Claiming to be the cu130 image with this CPU torch: the table cannot match it.
    monkeypatch.setenv("RESNEST_BENCH_IMAGE_TAG", "0.1.0-cu130")
    wrong = doctor.check_image_kernels()
    assert wrong.status == "FAIL"
    assert "the table says sm_75, sm_80, sm_86, sm_90, sm_100, sm_120; no PTX" in wrong.detail
    assert "the installed one has no CUDA build" in wrong.detail


def test_exclusive_process_mode_stops_the_deploy_workers_before_the_run():
    def smi(mode):
        def run(cmd, **kwargs):
            assert cmd[1] == "--query-gpu=compute_mode"
            return subprocess.CompletedProcess(cmd, 0, f"{mode}\n", "")

        return run

    check = doctor.check_compute_mode(gpu_suite(), smi("Exclusive_Process"))
    assert check.status == "FAIL" and "deploy workers" in check.detail
    assert doctor.check_compute_mode(gpu_suite(), smi("Default")).status == "OK"
    no_deploy = load_suite("gpu", quick=True, overrides={"steps": ["train"]})[0]
    assert doctor.check_compute_mode(no_deploy, smi("Exclusive_Process")).status == "SKIP"


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


def test_compile_without_g_plus_plus_fails(monkeypatch):
    monkeypatch.setattr(accel, "missing_compilers", lambda: ("g++",))
    check = doctor.check_compiler(gpu_suite(compile=True), (9, 0))
    assert check.status == "FAIL" and "needs g++" in check.detail
    auto = doctor.check_compiler(gpu_suite(), (9, 0))  # the gpu suite's compile = "auto"
    assert (
        auto.status == "OK"
        and "train: auto: eager (torch.compile on a GPU needs g++" in auto.detail
    )
    eager = {"train": {"compile": False}, "transfer": {"compile": False}}
    eager_suite = load_suite("gpu", quick=True, overrides=eager)[0]
    assert doctor.check_compiler(eager_suite, (9, 0)).status == "SKIP"


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


def test_doctor_without_a_suite_checks_what_this_machine_can_run(tmp_path, capsys, monkeypatch):
    """Issue 25: a bare `doctor` on a CPU machine checked the gpu suite and exited 1."""

    def no_driver():
        raise BenchError("no NVIDIA GPU here: nvidia-smi is not installed")

    monkeypatch.setattr(launcher, "query_gpus", no_driver)
    common = ["--no-smoke", "--reports", str(tmp_path), "--data-dir", str(tmp_path / "d")]
    assert main(["doctor", *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith("doctor: checking suite cpu-runtime (no GPU listed (no NVIDIA GPU here")
    assert doctor.default_suite([object()]) == ("gpu", "the driver lists 1 GPU(s)")


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


@pytest.mark.slow
def test_smoke_runs_every_stage_and_reports_a_failure(monkeypatch):
    suite = validate_suite(TINY, "tiny")
    check = doctor.smoke(suite)
    assert check.status == "OK" and "train, transfer, deploy" in check.detail
    from resnest_bench.harness import stages

    def broken(*args, **kwargs):
        raise RuntimeError("data broke\nsecond line")

    monkeypatch.setattr(stages, "load_dataset", broken)
    failed = doctor.smoke(suite)
    assert failed.status == "FAIL" and failed.detail == "RuntimeError: data broke"


def test_doctor_needs_no_gpu_for_a_cpu_suite(tmp_path):
    checks = doctor.quick_checks(validate_suite(TINY, "tiny"), tmp_path, Path(tmp_path))
    assert not doctor.failures(checks)
