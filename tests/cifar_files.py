"""CIFAR-10/100 binary archives made in a test (records, then a .tar.gz laid out like the
official one behind a file:// URL), for the loader's real download and parsing path."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np

from resnest_bench.harness.data import ArchiveSource


def records(labels: list[np.ndarray], pixels: np.ndarray) -> bytes:
    """Label byte(s) then 3072 pixel bytes (R, G, B planes, row-major) per image."""
    return np.column_stack([*labels, pixels]).astype(np.uint8).tobytes()


def pack(tmp_path: Path, folder: str, files: dict[str, bytes], name: str) -> ArchiveSource:
    """A .tar.gz laid out like the official one, with its md5, behind a file:// URL."""
    serve = tmp_path / "served"
    serve.mkdir(exist_ok=True)
    archive = serve / name
    with tarfile.open(archive, "w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    return ArchiveSource(archive.as_uri(), md5)
