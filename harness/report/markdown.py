"""Markdown building blocks shared by reports and comparisons: tables, number formats and the
one escaping of text that comes from a record.

Every figure that comes from repeated measurement is shown with its n and spread. Every string
a report shows from a result (which may come from another machine) passes `escape`, through
`escaped(record)` at the top of each renderer: raw HTML, a '|' or a newline in a model name or
run id must not become markup or break a table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from resnest_bench.harness.results.stats import Stats

MISSING = "-"
# HTML (< > &), table cells (|), code spans (`), links ([ ]) and the escape character itself;
# line breaks and other control characters end a table row or a list item, so they become spaces.
_SPECIAL = {c: f"\\{c}" for c in "\\`|[]"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
R = TypeVar("R")


def escape(text: object) -> str:
    """`text` as one line of literal markdown: safe in a table cell, a list item or a code span
    (there it may show a backslash or an entity, but never ends the span as markup)."""
    flat = _BREAKS.sub(" ", str(text))
    return "".join(_SPECIAL.get(c, c) for c in flat)


def escaped(value: R) -> R:
    """A copy of a record (pydantic model, list, dict, ...) with every string in it, keys too,
    passed through `escape`; numbers, booleans and None unchanged. Renderers start from this."""
    if isinstance(value, str):
        return escape(value)  # type: ignore[return-value]
    if isinstance(value, BaseModel):
        fields: dict[str, Any] = {
            name: escaped(getattr(value, name)) for name in type(value).model_fields
        }
        return value.model_copy(update=fields)
    if isinstance(value, dict):
        return {escaped(k): escaped(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, tuple) and hasattr(value, "_make"):  # a NamedTuple
        return value._make(escaped(v) for v in value)  # type: ignore[return-value]
    if isinstance(value, (list, tuple)):
        return type(value)(escaped(v) for v in value)  # type: ignore[return-value]
    return value


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table; text columns left, numbers right-aligned."""
    numeric = [
        all(_looks_numeric(row[i]) for row in rows if row[i] != MISSING) and bool(rows)
        for i in range(len(head))
    ]
    align = ["---:" if is_number else "---" for is_number in numeric]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _looks_numeric(cell: str) -> bool:
    head = str(cell).split(" ")[0].replace(",", "").rstrip("%x")
    try:
        float(head)
    except ValueError:
        return False
    return True


def num(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def pct(fraction: float | None, digits: int = 2) -> str:
    """0.8923 -> '89.23%'."""
    return MISSING if fraction is None else f"{100 * fraction:.{digits}f}%"


def points(percent: float | None) -> str:
    """A top-1 already in percent, always two decimals: 60.2 -> '60.20%' (one format for one
    kind of figure, however a row computed it)."""
    return MISSING if percent is None else f"{percent:.2f}%"


def mib(size_bytes: int | None) -> str:
    return MISSING if size_bytes is None else f"{size_bytes / 2**20:.1f}"


# The fewest samples a percentile is shown for: below 10 a p90 is the largest sample or next
# to it, below 100 a p99 is the largest; they are left out rather than printed as if measured.
PERCENTILE_MIN_N = {"p90": 10, "p99": 100}


def stats(sample: Stats | None, scale: float = 1.0, unit: str = "") -> str:
    """Stats as 'median (p90 x, p99 y, cv z%, n=k)', each percentile only where n supports it;
    scale converts units."""
    if sample is None:
        return MISSING
    parts = [
        f"{name} {getattr(sample, name) * scale:.4g}"
        for name, least in PERCENTILE_MIN_N.items()
        if sample.n >= least
    ]
    if sample.n >= 2:
        parts.append(f"cv {100 * sample.cv:.1f}%")
    return f"{sample.median * scale:.4g}{unit} ({', '.join([*parts, f'n={sample.n}'])})"
