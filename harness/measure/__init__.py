"""Measure stage: every target timed side by side (stage.py), in interleaved rounds
(interleaved.py), each in its own process (target.py), under one thread policy (threads.py).
"""

from resnest_bench.harness.measure.stage import (
    DEMO_INDEX,
    REFERENCE,
    SMALL_SEED,
    TargetSpec,
    demo,
    host_check,
    measure_artifacts,
    round_speedups,
    select_targets,
    session_speedups,
    small_indices,
)

__all__ = [
    "DEMO_INDEX",
    "REFERENCE",
    "SMALL_SEED",
    "TargetSpec",
    "demo",
    "host_check",
    "measure_artifacts",
    "round_speedups",
    "select_targets",
    "session_speedups",
    "small_indices",
]
