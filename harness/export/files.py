"""Writing artifact files: a temp file beside the target, renamed into place only when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from resnest_bench.harness.store.atomic import FILE_MODE


@contextlib.contextmanager
def temp_file(target: Path) -> Iterator[Path]:
    """A temp path beside `target` (same filesystem, so os.replace is atomic); always cleaned.
    Its mode is a new file's (mkstemp makes 0600, and writers that reopen the path keep it)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(FILE_MODE)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
