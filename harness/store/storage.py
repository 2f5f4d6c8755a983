"""Storage faults in the user's words: what went wrong, on which path, and what to do.

Every OSError a user can cause or meet (permissions, a read-only or full file system, a
missing folder, too many open files) becomes one line naming the path. The probes run before
any long work, so a run that cannot write its checkpoints or report stops in a second, not
after an hour of training.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from resnest_bench.harness.errors import BenchError

MB = 1024 * 1024

_ADVICE = {
    errno.EACCES: ("permission denied", "make it writable (chmod/chown) or choose another folder"),
    errno.EPERM: ("operation not permitted", "check its owner and permissions"),
    errno.EROFS: ("read-only file system", "choose a folder on a writable file system"),
    errno.ENOSPC: ("no space left on device", "free some space or choose another folder"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose another folder"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ENOTDIR: ("a file stands where a folder is expected", "move it or choose another path"),
    errno.EISDIR: ("a folder stands where a file is expected", "move it or choose another path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n 4096) and run again"),
    errno.ENFILE: ("too many open files on this system", "close other programs and run again"),
    errno.EIO: ("input/output error", "check the disk or network file system"),
}


def os_error_message(exc: OSError, what: str = "") -> str:
    """One line for an OSError: '<what> <path>: <problem>: <advice>'."""
    if exc.errno is None and exc.filename is None:  # raised by hand: its text is all there is
        return f"{what} {exc}".strip() if what else str(exc) or type(exc).__name__
    problem, advice = _ADVICE.get(exc.errno or 0, (exc.strerror or type(exc).__name__, ""))
    path = exc.filename if exc.filename is not None else "(no path)"
    subject = f"{what} {path}" if what else str(path)
    return f"{subject}: {problem}" + (f": {advice}" if advice else "")


@contextlib.contextmanager
def no_empty_folders_left(folder: Path) -> Iterator[None]:
    """`folder` and the parents of it that do not exist yet are removed again when the block
    fails and leaves them empty: a refused run leaves no empty reports folder behind."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        for path in missing:  # deepest first; rmdir refuses any that holds something
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def probe_writable(folder: Path, what: str) -> None:
    """Create `folder` if needed and write, sync and delete a probe file in it; BenchError naming
    the folder (e.g. 'reports folder /x: read-only file system: ...') if any step fails."""
    probe = folder / f".probe-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink()
    except OSError as exc:
        raise BenchError(os_error_message(exc, what)) from None


def check_free_space(folder: Path, need_bytes: int, what: str) -> None:
    """BenchError when `folder`'s file system has less than `need_bytes` free."""
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise BenchError(
            f"{what} {folder} has {free / MB:.0f} MB free but this run needs about "
            f"{need_bytes / MB:.0f} MB (checkpoints, artifacts, report): free some space "
            "or choose another folder with --reports"
        )


def run_bytes(params: list[int], *, train: bool, deploy: bool) -> int:
    """Bytes a run writes at its peak, from each model's parameter count (fp32, 4 bytes each):
    a training checkpoint holds weights and momentum (2x) and its temp copy while being
    replaced (2x more); deploy writes model.pt, ONNX fp32, int8 and .ort (~2.5x); 4 MB for
    logs, report and plots."""
    per_param = (4 * 4 if train else 0) + (4 * 2.5 if deploy else 0)
    return int(sum(params) * per_param) + 4 * MB
