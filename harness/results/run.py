"""Typed results: one envelope (RunResult) holding training and deployment sections, versioned
here and nowhere else.

Stages return these models; the pipeline wraps them in a RunResult and writes it with
write_result; report and compare read it back with read_result and render from attributes.
Files from older versions load (migrated on read); foreign files and files from a newer
resnest-bench are refused with a message that says so. No torch or runtime import here.

Version history: 1 - dicts checked by the former harness/schema.py; 2 - these models, with
config.dataset_override (the old `run --dataset`) folded into config.settings.data.dataset.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from resnest_bench.harness.errors import BenchError, validation_message
from resnest_bench.harness.results.deployment import Deployment
from resnest_bench.harness.results.environment import Environment
from resnest_bench.harness.results.record import Record
from resnest_bench.harness.results.training import Training, TrainingRun
from resnest_bench.harness.store.atomic import atomic_write_json
from resnest_bench.harness.store.readfile import read_json

RESULT_VERSION = 2
Kind = Literal["train", "transfer", "deploy", "suite"]


class RunConfig(Record):
    """What was asked for: the suite (name, file, --quick), its settings as validated
    (harness.config.Suite dumped), the --checkpoint started from, and the device used."""

    suite: str
    suite_file: str | None = None
    quick: bool = False
    settings: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = None
    device: str = "cpu"

    @field_validator("settings")
    @classmethod
    def _sections_are_tables(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The parts reports read have the suite's shape (a foreign file may have any)."""
        for name in ("model", "data", "train", "transfer", "deploy"):
            if name in settings and not isinstance(settings[name], dict):
                raise ValueError(f"settings.{name} must be a table")
        names = settings.get("model", {}).get("names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("settings.model.names must be a list of model names")
        return settings


class RunResult(Record):
    """The envelope of result.json."""

    schema_version: int = RESULT_VERSION
    kind: Kind
    run_id: str
    created: str  # ISO-8601 date-time, UTC
    command: list[str]
    seed: int
    environment: Environment
    config: RunConfig
    training: Training | None = None
    deployment: Deployment | None = None
    # steps that failed after others had results (step -> one-line reason); those were kept
    failed_steps: dict[str, str] = Field(default_factory=dict)

    @field_validator("created")
    @classmethod
    def _iso_time(cls, value: str) -> str:
        text = value[:-1] + "+00:00" if value.endswith("Z") else value  # 3.10 rejects "Z"
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("expected an ISO-8601 date-time") from None
        if "T" not in value and " " not in value:
            raise ValueError("expected an ISO-8601 date-time, not a date")
        return value

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Version 1 -> 2: config.dataset_override (the `run --dataset` flag) is folded into
        config.settings.data.dataset, where version 2 records the data set a suite ran on."""
        if not isinstance(data, dict) or data.get("schema_version") != 1:
            return data
        config = dict(data.get("config") or {})
        override = config.pop("dataset_override", None)
        if override:
            settings = dict(config.get("settings") or {})
            settings["data"] = {**(settings.get("data") or {}), "dataset": override}
            config["settings"] = settings
        return {**data, "config": config, "schema_version": RESULT_VERSION}

    def training_runs(self) -> list[TrainingRun]:
        """Every training record: the CIFAR-10 runs, then the transfer run if any."""
        return self.training.all_runs() if self.training else []


def write_result(path: str | os.PathLike[str], result: RunResult) -> None:
    """The result as JSON (field order kept), written atomically."""
    atomic_write_json(path, result.model_dump(mode="json"))


def read_result(path: str | os.PathLike[str]) -> RunResult:
    """Load a result of this or an older version; refuse foreign files and newer versions."""
    source = Path(path)
    obj = read_json(source, "result file")
    version = obj.get("schema_version") if isinstance(obj, dict) else None
    if (
        not isinstance(obj, dict)
        or "kind" not in obj
        or not isinstance(version, int)
        or isinstance(version, bool)
        or version < 1
    ):
        raise BenchError(
            f"{source} is not a resnest-bench result (no schema_version/kind at the top level)"
        )
    if version > RESULT_VERSION:
        raise BenchError(
            f"{source.name} has schema_version {version}; this resnest-bench reads up to "
            f"{RESULT_VERSION}: upgrade resnest-bench"
        )
    try:
        return RunResult.model_validate(obj)
    except ValidationError as exc:
        raise BenchError(f"{source}: {validation_message(exc)}") from None
