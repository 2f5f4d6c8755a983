"""Atomic writes for files users keep (checkpoints, results, reports).

A crash or Ctrl-C mid-write must leave either the old file or the new one, never a torn
half: data goes to a temp file in the same directory (same filesystem), is fsynced, and is
renamed over the target with os.replace, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resnest_bench.harness.errors import BenchError


def _current_umask() -> int:
    """Read the umask once (reading it means setting it) so temp files get normal modes."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file (0644 under umask 022)
# Staging folders are named .<final>.<host>-<pid>.<random>.staging, so a later run can tell a
# live one from the leftovers of a killed one (harness.store.runs.stale).
HOST = re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname()) or "host"
STAGING_SUFFIX = ".staging"


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` so readers see the old content or the new, never a mix."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            # mkstemp makes 0600 files; keep an existing file's mode, else the umask default.
            mode = target.stat().st_mode & 0o7777 if target.exists() else FILE_MODE
            os.chmod(tmp_name, mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            # a failed write() names no file; the user needs to know which one
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
    _fsync_dir(target.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text through atomic_write_bytes."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Pretty, key-stable JSON (diff-friendly) with a trailing newline; NaN is refused."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"cannot write {path}: not JSON-serialisable ({exc})") from exc
    atomic_write_text(path, text + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save into memory first so a failed pickle never touches the old checkpoint."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def staged_dir(final_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a run directory under a hidden temp name beside `final_dir`; publish it by rename.

    On a clean exit the whole directory appears at once; on an exception it is removed, so a
    half-finished run never looks like a finished one.
    """
    final = Path(final_dir)
    if final.exists():
        raise BenchError(f"output directory already exists: {final}")
    final.parent.mkdir(parents=True, exist_ok=True)
    owner = f".{final.name}.{HOST}-{os.getpid()}."
    staging = Path(tempfile.mkdtemp(prefix=owner, suffix=STAGING_SUFFIX, dir=final.parent))
    try:
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp makes 0700; a run dir is shared like any
        yield staging
        if final.exists():
            raise BenchError(f"output directory appeared while the run was writing: {final}")
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(final.parent)
