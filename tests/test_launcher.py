"""Launcher: GPU -> image choice, nvidia-smi parsing, and the container run, without an engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resnest_bench.harness import launcher
from resnest_bench.harness.errors import BenchError, GpuRequiredError

try:
    docker = launcher.docker_sdk()
except BenchError:
    pytest.skip(
        "the Docker SDK is not installed: pip install -e '.[host]'", allow_module_level=True
    )


@pytest.mark.parametrize(
    ("cc", "name"),
    [
        ((12, 0), "turing+"),
        ((9, 0), "turing+"),
        ((8, 6), "turing+"),
        ((7, 5), "turing+"),
        ((7, 2), "pascal-volta"),
        ((7, 0), "pascal-volta"),
        ((6, 1), "pascal-volta"),
        ((6, 0), "pascal-volta"),
        ((5, 2), "kepler-maxwell"),
        ((3, 7), "kepler-maxwell"),
    ],
)
def test_generation_for_compute_capability(cc, name):
    assert launcher.generation_for(cc).name == name


def test_generation_older_than_kepler_k80_is_refused():
    with pytest.raises(GpuRequiredError, match=r"3\.5 is older"):
        launcher.generation_for((3, 5))


def test_parse_compute_caps_one_per_gpu():
    assert launcher.parse_compute_caps("8.0\n7.5\n\n") == [(8, 0), (7, 5)]
    with pytest.raises(BenchError, match="unexpected compute capability"):
        launcher.parse_compute_caps("[N/A]\n")


def fake_smi(returncode=0, stdout="", stderr=""):
    def run(cmd, **kwargs):
        assert cmd[0] == "nvidia-smi" and "--query-gpu=compute_cap" in cmd
        return subprocess.CompletedProcess(cmd, returncode, stdout, stderr)

    return run


def test_query_compute_caps_reads_nvidia_smi():
    assert launcher.query_compute_caps(fake_smi(stdout="9.0\n")) == [(9, 0)]


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (fake_smi(9, stderr="NVIDIA-SMI has failed: driver not loaded\nmore"), "driver not loaded"),
        (fake_smi(stdout=""), "lists no GPU"),
    ],
)
def test_query_compute_caps_failures_are_gpu_errors(run, message):
    with pytest.raises(GpuRequiredError, match=message):
        launcher.query_compute_caps(run)


def test_no_nvidia_smi_is_a_gpu_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GpuRequiredError, match="nvidia-smi is not installed"):
        launcher.query_compute_caps()


def test_plan_picks_the_requested_gpu(tmp_path):
    p = launcher.plan([(8, 0), (6, 0)], gpu_index=1, command=[], reports=tmp_path, user="5:6")
    assert p.generation.service == "bench-gpu-volta"
    assert p.command == launcher.DEFAULT_COMMAND
    assert p.user == "5:6"
    with pytest.raises(BenchError, match="no GPU 2"):
        launcher.plan([(8, 0), (6, 0)], gpu_index=2)


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
    p = launcher.plan([(7, 5), (9, 0)], gpu_index=1, reports=tmp_path / "r", user="1000:1000")
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
    p = launcher.plan([(6, 1)], reports=tmp_path)
    with pytest.raises(BenchError, match="docker compose --profile volta build bench-gpu-volta"):
        launcher.run(p, FakeClient(missing=True))


def test_engine_without_gpu_support_is_a_gpu_error(tmp_path):
    p = launcher.plan([(8, 0)], reports=tmp_path)
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
        launcher.run(launcher.plan([(8, 0)], reports=tmp_path / "r"), FakeClient())


def test_main_dry_run_prints_the_choice(monkeypatch, capsys):
    monkeypatch.setattr(launcher, "query_compute_caps", lambda: [(7, 0)])
    assert launcher.main(["--dry-run", "--", "run", "gpu", "--quick"]) == 0
    err = capsys.readouterr().err
    assert "pascal-volta" in err and "run gpu --quick" in err and str(Path.cwd()) in err


def test_main_without_gpu_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert launcher.main(["--dry-run"]) == 2
    assert "nvidia-smi" in capsys.readouterr().err
