"""Errors the CLI reports as one line and exit code 2 (bad input, not bugs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class BenchError(Exception):
    """A user-facing failure: bad input, missing data or hardware; message is one line."""


class GpuRequiredError(BenchError):
    """A GPU was asked for and none is present."""


class PartlyFailed(BenchError):
    """The run finished and its report is written, but a step or target in it failed (each
    with its reason in the report): exit code 1, so scripts notice the missing figures."""

    exit_code = 1


class Int8Rejected(BenchError):
    """The run finished and its report is written, but its int8 model is outside the accuracy
    limit and the user did not allow that: exit code 3, so scripts cannot ship it by mistake."""

    exit_code = 3


def validation_message(exc: ValidationError) -> str:
    """The first problem of a pydantic ValidationError as '<json.path[i]>: <problem>'."""
    error = exc.errors()[0]
    where = ""
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    where = where or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    if error["type"] == "missing":
        return f"{where}: missing required key"
    shown = repr(error["input"])
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{where}: {error['msg'].removeprefix('Value error, ')}, got {shown}"


MAX_REASON = 240  # characters of a library's message a one-line reason keeps


def one_line(exc: BaseException, *, typed: bool = True) -> str:
    """'TypeName: first line of the message' (typed=False: the line alone; the type name when
    the message is empty), cut to MAX_REASON: how a library's failure becomes one line."""
    text = str(exc).strip().splitlines()
    if not text:
        return type(exc).__name__
    line = f"{type(exc).__name__}: {text[0]}" if typed else text[0]
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 3] + "..."
