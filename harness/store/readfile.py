"""Reading a file a user names (a result, a sweep record, a suite), bounded in size and depth.

A result.json can come from another machine: a 200 MB file was read whole, and a 100,000-deep
nesting ended in a RecursionError traceback. Every such file is read here, capped at
`MAX_BYTES`, and every failure is one BenchError line naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from resnest_bench.harness.errors import BenchError

MAX_BYTES = 64 * 2**20  # a 1,000-epoch result is under 1 MB; a sweep of 100 points a few


def read_text(path: Path, what: str, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of `path` (a `what`: 'result file', 'suite file'), at most `limit` bytes."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise BenchError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise BenchError(f"cannot read {what} {path}: {exc}") from None
    if len(data) > limit:
        raise BenchError(
            f"{what} {path} is larger than {limit / 2**20:g} MiB: not a file resnest-bench wrote"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"cannot read {what} {path}: not UTF-8 text ({exc.reason})") from None


def parse_json(text: str, path: Path) -> Any:
    """JSON from `text`, or one BenchError line: invalid, or nested too deeply to parse."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
    except RecursionError:
        raise BenchError(f"{path} nests its JSON too deeply to be a resnest-bench file") from None


def read_json(path: Path, what: str, limit: int = MAX_BYTES) -> Any:
    """read_text, then parse_json."""
    return parse_json(read_text(path, what, limit), path)
