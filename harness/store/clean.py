"""`resnest-bench clean`: what killed, refused and finished runs left under a reports folder.

Removable: staging folders and temp files whose owner is gone, work folders that hold no
checkpoint (refused runs), and the checkpoints of runs whose report was published (the
deployable model is in the report's artifacts/). Kept and listed: work folders of killed runs,
which `--resume RUN_ID` continues, anything a live process holds, and folders no run marked as
its own (harness.store.runs). Dry run by default.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from resnest_bench.harness.store.runs import LOCK_NAME, WORK, holder, is_marked, stale, unlocked

YOUNG_S = 60.0  # a work folder this new may be mid-reservation (created, not yet locked)


@dataclass(frozen=True)
class Entry:
    """One thing found: its path, what it is, its size, and whether clean removes it."""

    path: Path
    what: str
    size_bytes: int
    remove: bool


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _work_entry(reports: Path, work: Path) -> Entry:
    run_id = work.name
    if not unlocked(work):
        return Entry(work, f"in use by {holder(work)}", _size(work), remove=False)
    if not (work / LOCK_NAME).exists() and time.time() - work.stat().st_mtime < YOUNG_S:
        return Entry(work, "just reserved by a starting run", _size(work), remove=False)
    if not is_marked(work, run_id) and not (work / LOCK_NAME).exists():  # older runs: a lock
        return Entry(work, "not made by a run (no marker): left alone", _size(work), False)
    if (reports / run_id / "result.json").is_file():
        return Entry(work, f"checkpoints of finished run {run_id}", _size(work), remove=True)
    files = [p for p in work.rglob("*") if p.is_file() and p.name != LOCK_NAME]
    if not any(p.suffix == ".pt" for p in files):
        return Entry(work, "work folder without a checkpoint", _size(work), remove=True)
    return Entry(work, f"killed run: continue it with --resume {run_id}", _size(work), False)


def survey(reports: Path) -> list[Entry]:
    """Everything clean would remove or deliberately keep, debris first."""
    debris = [
        Entry(
            p,
            "staging folder of a killed run" if p.is_dir() else "temp file of a killed write",
            _size(p),
            remove=True,
        )
        for p in stale(reports)
    ]
    work_root = reports / WORK
    works = sorted(p for p in work_root.iterdir() if p.is_dir()) if work_root.is_dir() else []
    inside = {e.path for e in debris}
    return debris + [
        _work_entry(reports, w) for w in works if not any(w in p.parents for p in inside)
    ]


def remove(entries: list[Entry]) -> None:
    """Delete the entries marked for removal."""
    for entry in entries:
        if not entry.remove:
            continue
        if entry.path.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            entry.path.unlink(missing_ok=True)
