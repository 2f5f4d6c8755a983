"""Re-render a published run's or sweep's report from its results file, whichever it holds."""

from __future__ import annotations

from pathlib import Path

from resnest_bench.harness.results.sweep import SWEEP_NAME, SweepResult, read_record


def rerender(path: Path) -> list[Path]:
    """Write report.md and plots again beside `path` (a run or sweep folder, its result.json or
    sweep.json); the files written."""
    if path.is_dir():
        path = path / (SWEEP_NAME if (path / SWEEP_NAME).is_file() else "result.json")
    if path.name == SWEEP_NAME:
        from resnest_bench.harness.report.sweep import write_sweep_report

        written = write_sweep_report(path.parent, read_record(SweepResult, path))
    else:
        from resnest_bench.harness.report.run import write_report
        from resnest_bench.harness.results import read_result

        written = write_report(path.parent, read_result(path))
    return [path.parent / name for name in written]
