"""Launcher: GPU -> image choice, nvidia-smi parsing, and the container run, without an engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resnest_bench.harness.errors import BenchError, GpuRequiredError
from resnest_bench.harness.gpu import launcher

try:
    docker = launcher.docker_sdk()
except BenchError:
    pytest.skip(
        "the Docker SDK is not installed: pip install -e '.[host]'", allow_module_level=True
    )


def test_parse_compute_caps_one_per_gpu():
    assert launcher.parse_compute_caps("8.0\n7.5\n\n") == [(8, 0), (7, 5)]
    with pytest.raises(BenchError, match="unexpected compute capability"):
        launcher.parse_compute_caps("[N/A]\n")


def gpu(cc=(8, 0), driver=(580, 95, 5), index=0, name="NVIDIA A100-SXM4-80GB"):
    return launcher.HostGpu(index, name, cc, driver, "nvidia-smi")


def fake_smi(answers: dict[str, tuple[int, str, str]]):
    """nvidia-smi answering each --query-gpu field list with (returncode, stdout, stderr)."""

    def run(cmd, **kwargs):
        assert cmd[0] == "nvidia-smi"
        fields = cmd[1].removeprefix("--query-gpu=")
        code, out, err = answers[fields]
        return subprocess.CompletedProcess(cmd, code, out, err)

    return run


R470_NO_FIELD = (2, "", 'Field "compute_cap" is not a valid field to query.\n')


def test_query_gpus_reads_nvidia_smi():
    run = fake_smi(
        {
            "name,driver_version": (
                0,
                "NVIDIA H100 80GB HBM3, 580.95.05\nTesla T4, 580.95.05\n",
                "",
            ),
            "compute_cap": (0, "9.0\n7.5\n", ""),
        }
    )
    found = launcher.query_gpus(run, nvml=lambda: pytest.fail("NVML not needed"))
    assert [(g.name, g.compute_capability, g.cc_source) for g in found] == [
        ("NVIDIA H100 80GB HBM3", (9, 0), "nvidia-smi"),
        ("Tesla T4", (7, 5), "nvidia-smi"),
    ]
    assert found[1].driver == (580, 95, 5) and found[1].index == 1


def test_r470_without_compute_cap_uses_nvml_then_the_name_table():
    run = fake_smi(
        {"name,driver_version": (0, "Tesla K80, 470.256.02\n", ""), "compute_cap": R470_NO_FIELD}
    )
    (k80,) = launcher.query_gpus(run, nvml=lambda: [(3, 7)])
    assert k80.compute_capability == (3, 7) and k80.cc_source == "NVML"
    assert k80.driver == (470, 256, 2)
    (k80,) = launcher.query_gpus(run, nvml=lambda: None)
    assert k80.compute_capability == (3, 7) and k80.cc_source == "name table"
    p = launcher.plan([k80], reports=Path("r"), user="1:1")
    assert p.image.service == "bench-gpu-kepler"
    unknown = fake_smi(
        {"name,driver_version": (0, "Tesla K40m, 470.1\n", ""), "compute_cap": R470_NO_FIELD}
    )
    with pytest.raises(GpuRequiredError, match="nvidia-ml-py"):
        launcher.query_gpus(unknown, nvml=lambda: None)


def test_nvml_compute_caps_without_nvml_is_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert launcher.nvml_compute_caps() is None


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            {"name,driver_version": (9, "", "NVIDIA-SMI has failed: driver not loaded\nmore")},
            "driver not loaded",
        ),
        ({"name,driver_version": (0, "", "")}, "lists no GPU"),
    ],
)
def test_query_gpus_failures_are_gpu_errors(answers, message):
    with pytest.raises(GpuRequiredError, match=message):
        launcher.query_gpus(fake_smi(answers))


def test_no_nvidia_smi_is_a_gpu_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GpuRequiredError, match="nvidia-smi is not installed"):
        launcher.query_gpus()


def test_plan_picks_the_image_by_capability_and_driver(tmp_path):
    host = [gpu(), gpu((6, 0), index=1), gpu((7, 5), (535, 104, 5), index=2)]
    p = launcher.plan(host, gpu_index=1, command=[], reports=tmp_path, user="5:6")
    assert p.image.service == "bench-gpu-volta"
    assert p.command == launcher.DEFAULT_COMMAND
    assert p.user == "5:6"
    assert launcher.plan(host, gpu_index=2, reports=tmp_path).image.service == "bench-gpu-volta"
    with pytest.raises(BenchError, match="no GPU 3"):
        launcher.plan(host, gpu_index=3)


def test_too_old_driver_names_the_driver_needed(tmp_path):
    old = gpu((9, 0), (450, 51, 6), name="NVIDIA H100 PCIe")
    with pytest.raises(GpuRequiredError) as info:
        launcher.plan([old], reports=tmp_path)
    message = str(info.value)
    assert "\n" not in message and "no GPU is visible" not in message
    assert "driver 450.51.06 is too old for sm_90: install >= 450.80.02" in message
    assert ">= 580.65.06 for bench-gpu (CUDA 13.0)" in message
    with pytest.raises(GpuRequiredError, match=r"no image has kernels for compute capability 3\.5"):
        launcher.plan([gpu((3, 5))], reports=tmp_path)


class FakeContainer:
    def __init__(self, status: int):
        self.status, self.removed = status, False

    def logs(self, *, stream, follow):
        assert stream and follow
        return iter([b"epoch 1\n", b"done\n"])

    def wait(self):
        return {"StatusCode": self.status}

    def stop(self, timeout):
        raise AssertionError("not interrupted")

    def remove(self, force):
        self.removed = True


class FakeClient:
    """Records what the launcher asks Docker for; `missing` / `refuse` simulate failures."""

    def __init__(self, *, status=0, missing=False, refuse: str | None = None):
        self.missing, self.refuse, self.calls = missing, refuse, []
        self.container = FakeContainer(status)
        self.images, self.containers = self, self

    def get(self, image):  # images.get
        if self.missing:
            raise docker.errors.ImageNotFound(image)

    def run(self, image, command, **kwargs):  # containers.run
        if self.refuse:
            raise docker.errors.APIError("500", explanation=self.refuse)
        self.calls.append((image, command, kwargs))
        return self.container


def test_run_attaches_the_gpu_mounts_reports_and_returns_exit_code(tmp_path):
    p = launcher.plan(
        [gpu((7, 5)), gpu((9, 0), index=1)], gpu_index=1, reports=tmp_path / "r", user="1000:1000"
    )
    client, out = FakeClient(status=3), []
    assert launcher.run(p, client, out.append) == 3
    assert out == [b"epoch 1\n", b"done\n"]
    (image, command, kw) = client.calls[0]
    assert image == "resnest-bench-gpu:0.1.0-cu130" and command == ["run", "gpu"]
    (request,) = kw["device_requests"]
    assert request["Driver"] == "nvidia" and request["DeviceIDs"] == ["1"]
    assert request["Capabilities"] == [["gpu"]]
    assert kw["volumes"][str(tmp_path / "r")]["bind"] == "/reports"
    assert kw["volumes"][launcher.DATA_VOLUME]["bind"] == "/data"
    assert kw["user"] == "1000:1000" and kw["detach"]
    assert (tmp_path / "r").is_dir() and client.container.removed


def test_missing_image_says_how_to_build_it(tmp_path):
    p = launcher.plan([gpu((6, 1))], reports=tmp_path)
    with pytest.raises(BenchError, match="docker compose --profile volta build bench-gpu-volta"):
        launcher.run(p, FakeClient(missing=True))


def test_engine_without_gpu_support_is_a_gpu_error(tmp_path):
    p = launcher.plan([gpu()], reports=tmp_path)
    refuse = 'could not select device driver "nvidia" with capabilities: [[gpu]]'
    with pytest.raises(GpuRequiredError, match="NVIDIA Container Toolkit"):
        launcher.run(p, FakeClient(refuse=refuse))


def test_unreachable_engine_is_a_bench_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    with pytest.raises(BenchError, match="cannot reach the Docker engine"):
        launcher.docker_client()


def test_missing_sdk_is_a_bench_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)
    with pytest.raises(BenchError, match=r"resnest-bench\[host\]"):
        launcher.docker_client()


def test_checkout_docker_folder_is_not_taken_for_the_sdk(monkeypatch, tmp_path):
    """Without the SDK, a repo root on sys.path makes `import docker` find our docker/ folder
    (no __init__.py) as a namespace package; that is 'SDK missing', for the client and run."""
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    for name in [m for m in sys.modules if m == "docker" or m.startswith("docker.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(BenchError, match=r"resnest-bench\[host\]"):
        launcher.docker_client()
    with pytest.raises(BenchError, match=r"resnest-bench\[host\]"):
        launcher.run(launcher.plan([gpu()], reports=tmp_path / "r"), FakeClient())


def test_main_dry_run_prints_the_choice(monkeypatch, capsys):
    monkeypatch.setattr(launcher, "query_gpus", lambda: [gpu((7, 0), name="Tesla V100")])
    assert launcher.main(["--dry-run", "--", "run", "gpu", "--quick"]) == 0
    err = capsys.readouterr().err
    assert "pascal-volta" in err and "run gpu --quick" in err and str(Path.cwd()) in err


def test_main_without_gpu_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert launcher.main(["--dry-run"]) == 2
    assert "nvidia-smi" in capsys.readouterr().err
