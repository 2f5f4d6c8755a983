"""SIGTERM (what `docker stop` and schedulers send) and SIGINT (Ctrl-C) end a run one way.

Both raise `Stopped`, a KeyboardInterrupt, in the main thread, so the cleanup that already runs
for Ctrl-C runs for both: the staging folder goes (atomic.staged_dir), the run's lock is
released (runs.claimed), the pipeline attaches the command that resumes the run, and the CLI
prints one line and exits 128 + the signal number (143 for SIGTERM, 130 for SIGINT).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """The run was stopped by a signal; `hint` says how to continue it, when it can be."""

    def __init__(self, signum: int, hint: str | None = None) -> None:
        super().__init__(signum)
        self.signum = signum
        self.hint = hint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        said = f"stopped by {signal.Signals(self.signum).name}"
        return f"{said}; {self.hint}" if self.hint else said


def as_stopped(exc: KeyboardInterrupt, hint: str | None) -> Stopped:
    """`exc` as a Stopped carrying `hint` (a bare KeyboardInterrupt counts as SIGINT)."""
    return Stopped(exc.signum if isinstance(exc, Stopped) else signal.SIGINT, hint)


_owner: list[int] = []  # the pid that installed the handlers


def _raise(signum: int, _frame: FrameType | None) -> None:
    if os.getpid() not in _owner:
        # a process forked from ours (a library's helper: OpenVINO's telemetry sender) ends as
        # that signal ends any process, without our cleanup or a traceback
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    for handled in HANDLED:  # a second signal must not cut the cleanup of the first short
        signal.signal(handled, signal.SIG_IGN)
    raise Stopped(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside: SIGTERM and SIGINT raise Stopped. The handlers before are restored after (only
    the main thread can install handlers; elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {handled: signal.signal(handled, _raise) for handled in HANDLED}
    _owner.append(os.getpid())
    try:
        yield
    finally:
        _owner.pop()
        for handled, handler in previous.items():
            signal.signal(handled, handler)
