"""A sweep's points as Ray tasks on a real local cluster (a head and one more worker node,
started here with `ray start`): the same points and accuracies as the sequential sweep on the
same seed, a worker killed mid-point loses nothing, and workers write nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from resnest_bench.harness.sweep import run as sweep
from tests.test_distributed import _free_port
from tests.test_sweep import TINY_SWEEP, _request

pytest.importorskip("ray")
pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`ray start --head` on 127.0.0.1 and one more worker node, one CPU each; stopped after.
    A cluster on the loopback address only, so without Ray's token authentication (on by
    default since Ray 2.5x: the second node and the driver would need the head's token)."""
    temp = tmp_path_factory.mktemp("ray")
    address = f"127.0.0.1:{_free_port()}"
    os.environ["RAY_AUTH_MODE"] = "disabled"  # the driver (this process) connects too
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    start = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1"]
    start += ["--port", address.split(":")[1], "--include-dashboard", "false"]
    start += ["--temp-dir", str(temp), *common]
    head = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
    assert head.returncode == 0, head.stderr[-2000:]
    worker = [RAY, "start", "--address", address, "--node-ip-address", "127.0.0.1", *common]
    try:
        started = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr[-2000:]
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        os.environ.pop("RAY_AUTH_MODE", None)


def _kill_the_first_point_task(deadline: float, killed: list[int]) -> None:
    """SIGKILL the first worker process Ray names after the point task, once it has run 2 s."""
    while time.monotonic() < deadline and not killed:
        found = subprocess.run(["pgrep", "-f", "ray::_run_point_here"], capture_output=True)
        pids = [int(p) for p in found.stdout.split()]
        if pids:
            time.sleep(2.0)
            try:
                os.kill(pids[0], signal.SIGKILL)
            except ProcessLookupError:  # that point ended first: wait for the next one
                continue
            killed.append(pids[0])
        time.sleep(0.2)


@pytest.mark.skipif(shutil.which("pgrep") is None, reason="needs pgrep")
def test_ray_sweep_equals_the_sequential_one_and_survives_a_killed_worker(cluster, tmp_path):
    (tmp_path / "seq").mkdir(), (tmp_path / "ray").mkdir()
    _, sequential = sweep.run_sweep(_request(tmp_path / "seq"))
    request = _request(tmp_path / "ray")
    request = type(request)(**{**request.__dict__, "ray_address": cluster})
    killed: list[int] = []
    killer = threading.Thread(
        target=_kill_the_first_point_task, args=(time.monotonic() + 60, killed), daemon=True
    )
    killer.start()
    final, on_ray = sweep.run_sweep(request)
    killer.join()
    assert killed, "no point task was seen running"
    assert [p.status for p in on_ray.points] == ["ok"] * 4  # the killed point ran again
    for a, b in zip(sequential.points, on_ray.points, strict=True):
        assert (a.id, a.params, a.macs) == (b.id, b.params, b.macs)
        assert a.training.summary.best_test_top1 == b.training.summary.best_test_top1, a.id
    # only the driver wrote: the sweep's own folders, no point's train/ folder anywhere
    work = tmp_path / "ray" / "reports" / "work"
    assert not list(work.glob("*/points/*/train")) and (final / "report.md").is_file()


def test_an_address_nobody_answers_is_one_line_before_anything_is_written(tmp_path, capsys):
    """Ray would retry such an address for minutes; the sweep says so at once, exit 2."""
    from resnest_bench.harness.cli import main

    suite = tmp_path / "tiny-sweep.toml"
    suite.write_text(TINY_SWEEP)
    port = _free_port()  # bound and released: nothing listens there
    argv = ["sweep", str(suite), "--ray", f"127.0.0.1:{port}", "--reports", str(tmp_path / "r")]
    assert main([*argv, "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        f"resnest-bench: error: --ray 127.0.0.1:{port}: no Ray cluster answers"
    )
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
