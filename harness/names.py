"""The one check every name a user gives passes before it becomes part of a path.

Run and sweep ids (`--resume`), suite names (the command line's and a TOML's `name`) become
folder names under the reports folder; unchecked, `--resume ../../victim` locked, trained into
and finally deleted a folder outside it. A valid name is one path component: letters, digits,
'.', '_' and '-', starting with a letter or digit, no '..', at most 100 characters.
"""

from __future__ import annotations

import re
from pathlib import Path

from resnest_bench.harness.errors import BenchError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters"


def name_problem(value: object) -> str | None:
    """Why `value` is not a valid name, or None when it is (for pydantic validators)."""
    if not isinstance(value, str) or not NAME.fullmatch(value) or ".." in value:
        return f"must be a plain name ({RULE})"
    return None


def checked_name(value: str, what: str) -> str:
    """`value` itself when it is a valid name, else BenchError naming `what` it was for."""
    problem = name_problem(value)
    if problem:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise BenchError(f"{what} {shown} {problem}")
    return value


def child(parent: Path, name: str, what: str) -> Path:
    """parent/name, only for a valid name: the one way a user's name becomes a path."""
    return parent / checked_name(name, what)
