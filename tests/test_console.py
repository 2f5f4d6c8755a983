"""Progress without a terminal (logs, containers): timestamped lines at a steady cadence with an
ETA from the measured rate, and every line in the run's log file."""

from __future__ import annotations

import re

from resnest_bench.harness import console


def test_progress_off_a_terminal_says_the_time_left(monkeypatch, capsys, tmp_path):
    clock = iter(range(0, 1000, 10))  # each reading 10 s after the last
    monkeypatch.setattr(console.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(console, "CADENCE_S", 15.0)
    with console.log_file(tmp_path / "run.log"), console.progress() as bar:
        task = bar.add_task("train: batches", total=4)  # started at t=0
        for _ in range(4):
            bar.advance(task)  # t=10, 20, 30, 40
    lines = capsys.readouterr().err.splitlines()
    # t=10 is within the cadence; t=20: 2 of 4 in 20 s -> 20 s left; t=30 within the cadence
    # again; the last batch is always said (4 of 4, nothing left)
    assert [line[9:] for line in lines] == [
        "train: batches: 2/4, 0:00:20 elapsed, ETA 0:00:20",
        "train: batches: 4/4, 0:00:40 elapsed, ETA 0:00:00",
    ]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", line[:8]) for line in lines)
    logged = (tmp_path / "run.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in logged] == [line[9:] for line in lines]


def test_a_reset_task_starts_its_clock_again(monkeypatch, capsys):
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(console.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(console, "CADENCE_S", 0.0)
    with console.progress() as bar:
        task = bar.add_task("batches", total=2)
        bar.update(task, completed=2)
        bar.reset(task)
        bar.update(task, completed=1)
    lines = [line[9:] for line in capsys.readouterr().err.splitlines()]
    assert lines[-1] == "batches: 1/2, 0:00:10 elapsed, ETA 0:00:10"
