"""SIGTERM (docker stop) and SIGINT (Ctrl-C) sent to a real training run (issue 21, item 3):
one line naming the signal and the command that resumes the run, exit 143 or 130, no staging
folder left and the checkpoints kept for that command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_reliability import _train


def _wait_for(pattern: str, root: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.glob(pattern)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {pattern} under {root}"
        time.sleep(0.05)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_training_ends_in_one_line_with_the_resume_command(tmp_path, sig, code):
    reports = tmp_path / "r"
    command = [sys.executable, "-m", "resnest_bench.harness.cli"]
    argv = _train(reports, tmp_path / "d", epochs=500)
    proc = subprocess.Popen(
        [*command, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    _wait_for("work/*/train-resnest-tiny/checkpoint.pt", reports, proc)
    _wait_for(".*.staging", reports, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    (run_id,) = [p.name for p in (reports / "work").iterdir()]
    name = signal.Signals(sig).name
    assert err.splitlines()[-1].startswith(
        f"resnest-bench: stopped by {name}; run {run_id}'s checkpoints are in "
    )
    assert err.splitlines()[-1].endswith(f"--keep-checkpoints --resume {run_id}")
    assert out == ""
    assert not list(reports.glob(".*")) and sorted(p.name for p in reports.iterdir()) == ["work"]
    assert (reports / "work" / run_id / "train-resnest-tiny" / "checkpoint.pt").is_file()


def test_a_forked_helper_ends_quietly_on_sigterm():
    """A library's helper forked from a run (OpenVINO's telemetry sender) inherits the
    handlers; SIGTERM must end it like any process, not raise Stopped with a traceback."""
    import multiprocessing

    from resnest_bench.harness.signals import stop_on_signals

    def helper() -> None:
        time.sleep(30)

    with stop_on_signals():
        child = multiprocessing.get_context("fork").Process(target=helper)
        child.start()
        time.sleep(0.2)
        child.terminate()
        child.join(timeout=10)
    assert child.exitcode == -signal.SIGTERM  # killed by the signal, as without our handler
