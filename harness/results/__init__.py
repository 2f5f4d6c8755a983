"""Typed results: one envelope (RunResult, in run.py) holding training and deployment sections,
each in its own module; versioned in run.py and nowhere else.
"""

from resnest_bench.harness.results.run import (
    RESULT_VERSION,
    Kind,
    RunConfig,
    RunResult,
    read_result,
    write_result,
)

__all__ = [
    "RESULT_VERSION",
    "Kind",
    "RunConfig",
    "RunResult",
    "read_result",
    "write_result",
]
