"""Run ids, run locks and the debris of killed runs, under one reports folder.

A run id is reserved by creating its work folder with mkdir, which succeeds for exactly one
process even when two start in the same second or on two machines sharing the folder. The
process then holds an flock on `work/<run_id>/.lock` until it exits; the kernel drops the lock
when the process dies, however it dies, so a lock that can be taken belongs to nobody. That
one fact decides what is stale: temp files in an unlocked work folder, and staging folders
whose owner (host and pid in their name, see atomic.staged_dir) is gone. Every work folder
holds a marker naming its run, written when it was reserved: a folder is resumed or deleted
only when its marker says it is that run's, so no path given by a user is ever removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.names import checked_name, child
from resnest_bench.harness.store.atomic import HOST, STAGING_SUFFIX
from resnest_bench.harness.store.storage import os_error_message

LOCK_NAME = ".lock"
LOG_NAME = "run.log"  # every status and progress line of the run, timestamped; copied on publish
MARKER_NAME = ".resnest-bench-run"  # holds the run id; written once, when the id is reserved
WORK = "work"
_STAGING = re.compile(r"^\.(?P<run>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.staging$")


@dataclass(frozen=True)
class Claim:
    """A run this process holds: its id, its work folder and the open, locked lock file."""

    run_id: str
    work: Path
    fd: int


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    return True


def _lock(work: Path) -> int | None:
    """The fd of work/.lock, exclusively locked by us, or None when a live process holds it."""
    fd = os.open(work / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    if not _try_lock(fd):
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    return fd


def holder(work: Path) -> str:
    """Who holds a run, as its lock file says: 'process 123 on host'."""
    try:
        pid, host = (work / LOCK_NAME).read_text().split()[:2]
    except (OSError, ValueError):
        return "another process"
    return f"process {pid} on {host}"


def reserve(reports: Path, label: str) -> Claim:
    """A new run id (20261123-051900-cpu-runtime, then -2, -3 ... when taken), its work
    folder created and locked; the finished-run folder of the id must not exist either."""
    checked_name(label, "suite name")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    (reports / WORK).mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        run_id = f"{stamp}-{label}" + (f"-{n}" if n > 1 else "")
        work = reports / WORK / run_id
        if (reports / run_id).exists():
            continue
        try:
            work.mkdir()
        except FileExistsError:
            continue
        fd = _lock(work)
        if fd is not None:
            (work / MARKER_NAME).write_text(run_id + "\n")
            return Claim(run_id, work, fd)
    raise BenchError(f"no free run id under {reports} for {stamp}-{label}")


def is_marked(work: Path, run_id: str) -> bool:
    """True when `work` holds the marker that run `run_id` wrote when it was reserved."""
    try:
        return (work / MARKER_NAME).read_text().strip() == run_id
    except (OSError, UnicodeDecodeError):
        return False


def hold(reports: Path, run_id: str) -> Claim:
    """Lock an existing run to resume it: only a valid run id, only a folder that run marked
    as its own, refused while another live process holds it."""
    work = child(reports / WORK, run_id, "run id")
    if not work.is_dir():
        raise BenchError(f"nothing to resume: {work} does not exist")
    if not is_marked(work, run_id):
        if not (work / LOCK_NAME).is_file():  # runs before the marker had only their lock
            raise BenchError(
                f"refusing to resume {work}: it is not a resnest-bench run folder "
                f"(no {MARKER_NAME} naming {run_id})"
            )
        (work / MARKER_NAME).write_text(run_id + "\n")
    fd = _lock(work)
    if fd is None:
        raise BenchError(
            f"run {run_id} is in use by {holder(work)}: wait for it to finish, or stop it "
            "and resume again"
        )
    return Claim(run_id, work, fd)


def _only_bookkeeping(work: Path) -> bool:
    return all(p.is_dir() or p.name in (LOCK_NAME, MARKER_NAME, LOG_NAME) for p in work.rglob("*"))


def discard(claim: Claim) -> None:
    """Delete the run's work folder, only when its marker says this run created it."""
    if is_marked(claim.work, claim.run_id):
        shutil.rmtree(claim.work, ignore_errors=True)
        with contextlib.suppress(OSError):  # the work root too, when that leaves it empty
            claim.work.parent.rmdir()


def release(claim: Claim) -> None:
    """Unlock; a work folder that holds nothing (a refused run, a deploy-only run) goes."""
    if _only_bookkeeping(claim.work):
        discard(claim)
    os.close(claim.fd)


@contextlib.contextmanager
def claimed(reports: Path, label: str, resume: str | None) -> Iterator[Claim]:
    """Reserve a new run (or hold `resume`), clear the debris of dead runs, release at the end."""
    try:
        claim = hold(reports, resume) if resume else reserve(reports, label)
    except OSError as exc:
        raise BenchError(os_error_message(exc, "reports folder")) from None
    try:
        for path in stale(reports):
            _remove(path)
        yield claim
    finally:
        release(claim)


# ---------------------------------------------------------------------------------------------
# What a killed run leaves behind


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def staging_is_stale(path: Path) -> bool:
    """A staging folder of ours whose owner process (on this host) is gone."""
    match = _STAGING.match(path.name)
    return bool(match) and match["host"] == HOST and not _pid_alive(int(match["pid"]))


def unlocked(work: Path) -> bool:
    """True when no live process holds `work` (checked by taking and dropping its lock)."""
    try:
        fd = os.open(work / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not _try_lock(fd):
        return False
    os.close(fd)
    return True


def stale(reports: Path) -> list[Path]:
    """Staging folders of dead owners and temp files in work folders nobody holds."""
    if not reports.is_dir():
        return []
    found = [p for p in reports.glob(f".*{STAGING_SUFFIX}") if staging_is_stale(p)]
    work_root = reports / WORK
    for work in sorted(work_root.iterdir()) if work_root.is_dir() else []:
        if work.is_dir() and unlocked(work):
            found += sorted(work.rglob(".*.tmp"))
    return found


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
