"""What a sweep measured: one SweepPoint per point of the search space, in one SweepResult.

Each point that trained carries the same TrainingRun and Deployment records a suite run does;
a point over budget carries only its size, a failed one its one-line reason (and whatever
stage finished before the failure). No torch here: harness.report.sweep renders from these.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from resnest_bench.harness.errors import BenchError, validation_message
from resnest_bench.harness.results import RunConfig
from resnest_bench.harness.results.deployment import Deployment
from resnest_bench.harness.results.environment import Environment
from resnest_bench.harness.results.record import Record
from resnest_bench.harness.results.training import TrainingRun
from resnest_bench.harness.store.atomic import atomic_write_json
from resnest_bench.harness.store.readfile import read_json

SWEEP_VERSION = 1
PointStatus = Literal["ok", "failed", "over-budget"]
R = TypeVar("R", bound=Record)


class PointSpec(Record):
    """Where a point sits on the sweep's axes (the base config's value where an axis is empty)."""

    block: Literal["bottleneck", "basic"]
    radix: int
    cardinality: int
    width: float
    layers: list[int]
    stem: Literal["imagenet", "cifar"]


class SweepPoint(Record):
    """One point: its network (model: the full ModelConfig as plain data), size, and results."""

    id: str
    spec: PointSpec
    model: dict[str, Any]
    params: int | None = None
    macs: int | None = None  # per image at the data's image size
    status: PointStatus
    reason: str | None = None  # why it failed or was left out: one line
    training: TrainingRun | None = None
    deployment: Deployment | None = None

    @property
    def top1(self) -> float | None:
        """Test top-1 (fraction) of the trained fp32 model after its last epoch."""
        return self.training.summary.final_test_top1 if self.training else None


class SweepResult(Record):
    """The envelope of sweep.json: the suite as run, the space's size, and every point."""

    schema_version: int = SWEEP_VERSION
    kind: Literal["sweep"] = "sweep"
    sweep_id: str
    created: str
    command: list[str]
    seed: int
    environment: Environment
    config: RunConfig
    mode: Literal["grid", "random"]
    grid_points: int  # points in the axes' product, before budget or sampling
    max_params: int | None
    max_macs: int | None
    points: list[SweepPoint]

    @property
    def synthetic(self) -> bool:
        data = self.config.settings.get("data", {})
        trained = [p.training for p in self.points if p.training]
        return data.get("dataset") == "synthetic" or any(t.dataset.synthetic for t in trained)


SWEEP_NAME = "sweep.json"


def write_record(path: str | os.PathLike[str], record: Record) -> None:
    """A point or a sweep as JSON, written atomically."""
    atomic_write_json(path, record.model_dump(mode="json"))


def read_record(kind: type[R], path: str | os.PathLike[str]) -> R:
    """A point.json or sweep.json as `kind`, or BenchError naming the file and the problem."""
    source = Path(path)
    obj = read_json(source, "sweep record")
    try:
        return kind.model_validate(obj)
    except ValidationError as exc:
        raise BenchError(f"{source}: {validation_message(exc)}") from None
