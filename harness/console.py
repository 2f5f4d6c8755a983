"""Terminal output: rich tables and progress bars on a terminal, plain lines otherwise.

The library never prints; the CLI asks this module for a progress bar or a table.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from resnest_bench.harness.store.places import host_path

_state: dict[str, Any] = {"quiet": False, "verbose": False, "log_file": None}
_err = Console(stderr=True)
_out = Console()


def configure(*, quiet: bool, verbose: bool = False) -> None:
    _state["quiet"] = quiet
    _state["verbose"] = verbose


def detail(message: str) -> None:
    """A line shown only with -v (per-round figures and the like)."""
    if _state["verbose"]:
        log(message)


def interactive() -> bool:
    return not _state["quiet"] and _err.is_terminal


def log(message: str) -> None:
    """One status line on stderr (stdout stays clean for --json and piping); off a terminal it
    starts with the time. Every line also goes to the run's log file, when one is open."""
    if interactive():
        _err.print(message)
    else:
        print(f"{datetime.now():%H:%M:%S} {message}", file=sys.stderr, flush=True)
    _to_file(message)


def _to_file(message: str) -> None:
    handle = _state["log_file"]
    if handle is not None:
        handle.write(f"{datetime.now().isoformat(timespec='seconds')} {message}\n")
        handle.flush()


@contextmanager
def log_file(path: Path) -> Iterator[None]:
    """Append every status and progress line to `path` (the run's run.log) while open."""
    with path.open("a", encoding="utf-8") as handle:
        _state["log_file"] = handle
        try:
            yield
        finally:
            _state["log_file"] = None


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column == "name" else "right")
    for row in rows:
        table.add_row(*(_fmt(row.get(column)) for column in columns))
    _out.print(table)


# Off a terminal (logs, containers), a progress line per task at most this often, with its ETA.
CADENCE_S = 30.0


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    started: float = field(default_factory=lambda: time.monotonic())
    said: float = 0.0  # when its last line was said; the first comes after CADENCE_S

    def __post_init__(self) -> None:
        self.said = self.started

    def line(self, now: float) -> str:
        elapsed = now - self.started
        done = f"{self.completed:g}/{self.total:g}" if self.total else f"{self.completed:g}"
        eta = ""
        if self.total and self.completed:  # from the rate measured so far
            eta = f", ETA {_clock(elapsed * (self.total - self.completed) / self.completed)}"
        return f"{self.description}: {done}, {_clock(elapsed)} elapsed{eta}"


class _Ticker:
    """rich Progress's task calls, answered with a timestamped line per task every CADENCE_S
    (and when a task completes): to stderr off a terminal, to the run's log file always."""

    def __init__(self, bar: Progress | None = None) -> None:
        self.bar, self.tasks = bar, {}

    def add_task(self, description: str, total: float | None = None) -> Any:
        key = self.bar.add_task(description, total=total) if self.bar else len(self.tasks)
        self.tasks[key] = _Task(description, total)
        return key

    def update(self, key: Any, *, advance: float = 0, **fields: Any) -> None:
        if self.bar:
            self.bar.update(key, advance=advance, **fields)
        task = self.tasks[key]
        task.description = fields.get("description", task.description)
        task.total = fields.get("total", task.total)
        task.completed = fields.get("completed", task.completed) + advance
        now = time.monotonic()
        finished = bool(task.total) and task.completed >= task.total
        if finished or now - task.said >= CADENCE_S:
            task.said = now
            (_to_file if self.bar else log)(task.line(now))

    def advance(self, key: Any, amount: float = 1) -> None:
        self.update(key, advance=amount)

    def reset(self, key: Any, **fields: Any) -> None:
        """The task from zero again (each epoch's batches): its clock restarts."""
        if self.bar:
            self.bar.reset(key, **fields)
        task = self.tasks[key]
        self.tasks[key] = _Task(fields.get("description", task.description), task.total)

    def remove_task(self, key: Any) -> None:
        if self.bar:
            self.bar.remove_task(key)
        del self.tasks[key]


@contextmanager
def progress() -> Iterator[_Ticker]:
    """Progress bars with ETA for epochs, batches, latency loops and downloads on a terminal;
    timestamped lines at a steady cadence otherwise."""
    if not interactive():
        yield _Ticker()
        return
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_err,
        transient=False,
        # the ETA from every step since the task began: an epoch is longer than rich's default
        # 30 s window, which left the epoch bar's ETA blank for the whole run
        speed_estimate_period=24 * 3600,
    )
    with bar:
        yield _Ticker(bar)


@contextmanager
def steps(title: str) -> Iterator[Callable[[str, int, int], None]]:
    """A named multi-step task: the callback (description, done, total) moves one bar with an
    ETA on a terminal, or prints one line per step otherwise; the log file gets each step."""
    if not interactive():
        yield lambda description, done, total: log(f"{title} [{done + 1}/{total}] {description}")
        return
    with progress() as bar:
        task = bar.add_task(title, total=None)

        def update(description: str, done: int, total: int) -> None:
            _to_file(f"{title} [{done + 1}/{total}] {description}")
            bar.update(task, description=f"{title}: {description}", completed=done, total=total)

        yield update
        bar.update(task, description=f"{title}: done", completed=bar.tasks[task].total or 0)


def published(folder: Path, main_file: str, what: str = "report") -> None:
    """Say where a result landed: its main file on stderr, the folder on stdout (for scripts);
    both as the host sees them, the container's path beside when they differ."""
    shown = host_path(folder)
    inside = f" (in the container: {folder / main_file})" if shown != folder else ""
    log(f"{what}: {shown / main_file}{inside}")
    print(shown)
