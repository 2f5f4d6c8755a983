"""Where reports and data live, from flags or the environment, and a path as the host sees it.

In a container compose mounts the host's reports folder; its own path (/reports/...) means
nothing on the host, so what is printed for a user goes through `host_path`.
"""

from __future__ import annotations

import os
from pathlib import Path


def reports_root(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("RESNEST_BENCH_REPORTS", "reports"))


def host_path(path: Path) -> Path:
    """`path` as the host sees it, when this runs in a container whose reports folder compose
    mounted from the host ($RESNEST_BENCH_HOST_REPORTS): /reports/... exists only inside."""
    host, inside = (
        os.environ.get("RESNEST_BENCH_HOST_REPORTS"),
        os.environ.get("RESNEST_BENCH_REPORTS"),
    )
    if not host or not inside:
        return path
    try:
        return Path(host) / path.resolve().relative_to(Path(inside).resolve())
    except ValueError:
        return path


def data_root(explicit: str | None) -> Path:
    default = Path.home() / ".cache" / "resnest-bench" / "data"
    return Path(explicit or os.environ.get("RESNEST_BENCH_DATA", default))
