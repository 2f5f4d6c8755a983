"""Markdown building blocks shared by reports and comparisons: tables and number formats.

Every figure that comes from repeated measurement is shown with its n and spread.
"""

from __future__ import annotations

from collections.abc import Sequence

from resnest_bench.harness.results.stats import Stats

MISSING = "-"


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


def mib(size_bytes: int | None) -> str:
    return MISSING if size_bytes is None else f"{size_bytes / 2**20:.1f}"


def stats(sample: Stats | None, scale: float = 1.0, unit: str = "") -> str:
    """Stats as 'median (p90 x, p99 y, cv z%, n=k)'; scale converts units."""
    if sample is None:
        return MISSING
    median, p90, p99 = (v * scale for v in (sample.median, sample.p90, sample.p99))
    return (
        f"{median:.4g}{unit} (p90 {p90:.4g}, p99 {p99:.4g}, cv {100 * sample.cv:.1f}%, "
        f"n={sample.n})"
    )
