"""The measure stage alone, under the thread policy run_deploy would choose for the section."""

from __future__ import annotations

from typing import Any

from resnest_bench.harness.measure import measure_artifacts, threads


def measure(directory: Any, artifacts: Any, data: Any, section: Any, **kwargs: Any) -> Any:
    policy = threads.choose(section.threads, section.spinning)
    return measure_artifacts(directory, artifacts, data, section, policy, **kwargs)
