"""One sweep point, trained and deployed as a suite run is (the pipeline's own stages), in turn
here or as a Ray task (sweep.ray_tasks); its record says how it ended."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resnest_bench.harness import console
from resnest_bench.harness.checkpoints import config_to_dict
from resnest_bench.harness.data import Dataset
from resnest_bench.harness.errors import BenchError, one_line
from resnest_bench.harness.results.sweep import PointSpec, PointStatus, SweepPoint
from resnest_bench.harness.stages import RunRequest, deploy_model, model_to_deploy, train_one
from resnest_bench.models import ModelConfig, ModelError
from resnest_bench.models.resnest import ResNeSt


@dataclass(frozen=True)
class Candidate:
    """A point of the plan: its network and size; `excluded` (status, reason) when it is not
    trained (over budget, or its axes' values form no network)."""

    spec: PointSpec
    config: ModelConfig
    params: int | None = None
    macs: int | None = None
    excluded: tuple[PointStatus, str] | None = None

    @property
    def id(self) -> str:
        return self.config.name

    def record(self, status: PointStatus, reason: str | None = None, **stages: Any) -> SweepPoint:
        return SweepPoint(
            id=self.id,
            spec=self.spec,
            model=config_to_dict(self.config),
            params=self.params,
            macs=self.macs,
            status=status,
            reason=reason,
            **stages,
        )


def _seeded_network(config: ModelConfig, seed: int) -> ResNeSt:
    """The point's network with its init fixed by the seed, leaving the global RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResNeSt(config)


def run_point(
    request: RunRequest, point: Candidate, dataset: Dataset, device: str, point_dir: Path
) -> SweepPoint:
    """Train and deploy one point; a failure is returned as a failed point with what finished."""
    suite = request.suite
    stages: dict[str, Any] = {}
    stage = "build"
    try:
        model = _seeded_network(point.config, suite.seed)
        stage = "train"
        # the pipeline's own stages; a resumed sweep continues the point's last checkpoint
        stages["training"] = train_one(
            request, model, dataset, point_dir / "train", device=device, label=point.id
        )
        if "deploy" in suite.steps:
            stage = "deploy"
            artifacts = point_dir / "artifacts"
            shutil.rmtree(artifacts, ignore_errors=True)  # an interrupted attempt's: rebuilt
            model, fed, source = model_to_deploy(request, model, dataset)
            stages["deployment"] = deploy_model(
                request, model, fed, artifacts, device=device, preprocessing_from=source
            )
    except Exception as exc:  # the sweep goes on; KeyboardInterrupt still stops it
        return point.record("failed", f"{stage}: {failure_reason(exc)}", **stages)
    finally:
        gc.collect()
    return point.record("ok", **stages)


def run_in_turn(
    request: RunRequest, points: list[Candidate], dataset: Dataset, device: str, work: Path
) -> Iterator[tuple[Candidate, SweepPoint]]:
    """Each point on this machine, one after another, in its work folder (resumable)."""
    for number, point in enumerate(points, 1):
        console.log(f"[{number}/{len(points)}] {point.id}: {point.params:,} parameters")
        yield point, run_point(request, point, dataset, device, work / "points" / point.id)


def failure_reason(exc: BaseException) -> str:
    """One line: ours are worded for users; a library's keeps its type name."""
    return one_line(exc, typed=not isinstance(exc, BenchError | ModelError))
