"""Terminal output: rich tables and progress bars on a terminal, plain lines otherwise.

The library never prints; the CLI asks this module for a progress bar or a table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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

_state = {"quiet": False, "verbose": False}
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
    """One status line on stderr (stdout stays clean for --json and piping)."""
    if interactive():
        _err.print(message)
    else:
        print(message, file=sys.stderr, flush=True)


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


class _LineProgress:
    """Stand-in for rich Progress off a terminal: a log line per finished task, no bars."""

    def add_task(self, description: str, total: float | None = None) -> str:
        return description

    def advance(self, task: str, amount: float = 1) -> None:
        pass

    def update(self, task: str, **_: Any) -> None:
        pass

    def remove_task(self, task: str) -> None:
        log(f"done: {task}")


@contextmanager
def progress() -> Iterator[Progress | _LineProgress]:
    """Progress bars with ETA for epochs, batches, latency loops and downloads."""
    if not interactive():
        yield _LineProgress()
        return
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_err,
        transient=False,
    )
    with bar:
        yield bar


@contextmanager
def steps(title: str) -> Iterator[Callable[[str, int, int], None]]:
    """A named multi-step task: the callback (description, done, total) moves one bar with an
    ETA on a terminal, or prints one line per step otherwise."""
    if not interactive():
        yield lambda description, done, total: log(f"{title} [{done + 1}/{total}] {description}")
        return
    with progress() as bar:
        task = bar.add_task(title, total=None)

        def update(description: str, done: int, total: int) -> None:
            bar.update(task, description=f"{title}: {description}", completed=done, total=total)

        yield update
        bar.update(task, description=f"{title}: done", completed=bar.tasks[0].total or 0)
