"""Fetch a dataset archive once into a cache directory, verified and extracted atomically.

The cache holds either nothing or a complete state: downloads stream into a temp file that is
renamed into place only after its md5 matches, and extraction builds the folder under a temp
name (harness.store.atomic.staged_dir) and publishes it only when every expected file is there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.store.atomic import staged_dir
from resnest_bench.harness.store.storage import os_error_message, probe_writable

DATA_FOLDER = "data folder (--data-dir or $RESNEST_BENCH_DATA)"

Progress = Callable[[int, int | None], None]
"""Called with (bytes done, bytes total or None) while an archive downloads."""

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveSource:
    """Where an archive comes from and the md5 it must have; tests pass file:// URLs."""

    url: str
    md5: str

    @property
    def filename(self) -> str:
        return PurePosixPath(urllib.parse.urlparse(self.url).path).name


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download(source: ArchiveSource, target: Path, progress: Progress | None) -> None:
    """Stream `source` into `target`, renaming into place only once the md5 matches."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    digest = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=60) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length else None
            done = 0
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if digest.hexdigest() != source.md5:
            raise BenchError(
                f"download from {source.url} is corrupt (md5 {digest.hexdigest()}, "
                f"expected {source.md5}); nothing was kept: run again"
            )
        os.replace(tmp_name, target)
    except (urllib.error.URLError, OSError) as exc:
        raise BenchError(
            f"cannot download {source.url} ({exc}): check the network, or place "
            f"{target.name} in {target.parent} by hand"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def _verified_archive(
    source: ArchiveSource, root: Path, download: bool, progress: Progress | None
) -> Path:
    """The archive in `root`, downloaded if allowed; one with a wrong md5 is deleted."""
    archive = root / source.filename
    if archive.exists():
        actual = _md5(archive)
        if actual == source.md5:
            return archive
        archive.unlink()
        again = (
            "run again to download it afresh"
            if download
            else f"downloading is off: download {source.url} into {root} again by hand"
        )
        raise BenchError(
            f"{archive} is corrupt (md5 {actual}, expected {source.md5}) and was deleted: {again}"
        )
    if not download:
        raise BenchError(
            f"{archive} not found and downloading is off: download {source.url} "
            f"into {root}, or allow downloading"
        )
    probe_writable(root, DATA_FOLDER)  # before a download that could not be kept
    _download(source, archive, progress)
    return archive


def _extract_members(archive: Path, folder: str, members: tuple[str, ...], dest: Path) -> None:
    """Copy exactly `folder/<member>` out of the archive; nothing else, so no path tricks."""
    wanted = {f"{folder}/{name}": name for name in members}
    found: set[str] = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                name = wanted.get(info.name.removeprefix("./"))
                reader = tar.extractfile(info) if name is not None and info.isfile() else None
                if reader is None:
                    continue
                with reader, (dest / name).open("wb") as out:
                    shutil.copyfileobj(reader, out, _CHUNK)
                found.add(name)
    except OSError as exc:  # writing the extracted files: a full or read-only disk
        if exc.filename is None:  # tarfile's own read errors carry no file name
            raise BenchError(f"cannot extract {archive} ({exc}): delete it and run again") from exc
        raise BenchError(os_error_message(exc, "extracting into")) from None
    except (tarfile.TarError, EOFError) as exc:
        raise BenchError(f"cannot extract {archive} ({exc}): delete it and run again") from exc
    missing = sorted(set(members) - found)
    if missing:
        raise BenchError(
            f"{archive} lacks {folder}/{missing[0]}: it is not the expected archive; "
            f"delete it and run again"
        )


def ensure_extracted(
    source: ArchiveSource,
    root: Path,
    folder: str,
    members: tuple[str, ...],
    *,
    download: bool,
    progress: Progress | None = None,
) -> Path:
    """`root/folder` holding every file in `members`, fetching and extracting as needed."""
    target = root / folder
    if all((target / name).is_file() for name in members):
        return target
    archive = _verified_archive(source, root, download, progress)
    probe_writable(root, DATA_FOLDER)
    if target.exists():  # our cache folder, but a file was deleted: rebuild it whole
        shutil.rmtree(target)
    with staged_dir(target) as staging:
        _extract_members(archive, folder, members, staging)
    return target
