"""The result schema: one envelope, versioned here and nowhere else.

Writers (train, transfer, deploy, suite) validate before writing; readers (report, compare)
refuse files that are not ours or come from a newer resnest-bench instead of misreading them.
The spec language is a few small classes so a schema reads like the JSON it describes:

    {"loss": float, "note": Optional(str), "epochs": [{"acc": Nullable(float)}]}

Spec forms: int, float (any JSON number), str, bool, dict (any object), list (any array),
`[spec]` (array of spec), `{key: spec}` (object with exactly these keys), Record(fields,
extra=True) (these keys, others allowed), MapOf(spec) (any keys, each value spec),
Nullable(spec), OneOf(*values), IsoTime, Anything; Optional(spec) marks a key that may be
absent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from resnest_bench.harness.atomic import atomic_write_json
from resnest_bench.harness.errors import BenchError

SCHEMA_VERSION = 1
KINDS = ("train", "transfer", "deploy", "suite")


@dataclass(frozen=True)
class Optional:
    """A dict key that may be absent (present keys must still match `spec`)."""

    spec: Any


@dataclass(frozen=True)
class Nullable:
    """A value that is null or matches `spec`."""

    spec: Any


@dataclass(frozen=True)
class OneOf:
    """A value equal to one of the given constants."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class MapOf:
    """An object with arbitrary string keys, each value matching `spec`."""

    spec: Any


@dataclass(frozen=True)
class Record:
    """An object with the given keys; extra=True also allows keys not listed."""

    fields: dict[str, Any]
    extra: bool = field(default=False)


class _IsoTime:
    """A string in ISO-8601 date-time form."""


class _Anything:
    """Any JSON value."""


IsoTime = _IsoTime()
Anything = _Anything()

# The training section: one TrainResult.to_dict() per trained model, plus the transfer run.
_STATS_SPEC = Record(
    {"n": int, **{k: float for k in ("mean", "median", "p90", "p99", "min", "max", "std", "cv")}}
)
EPOCH_SPEC = Record(
    {
        "epoch": int,
        "batch_size": int,
        "lr": float,
        "warmup": bool,
        "train_s": float,
        "eval_s": float,
        "cumulative_train_s": float,
        "images": int,
        "images_per_s": float,
        "train_loss": Nullable(float),
        "train_acc": float,
        "weights_finite": bool,
        "test_loss": Nullable(float),
        "test_top1": float,
        "peak_memory_bytes": Nullable(int),
        "energy_j": Nullable(float),
        "mean_power_w": Nullable(float),
        "energy_method": Nullable(OneOf("counter", "sampled")),
        "flops_per_s": float,
        "mfu": Nullable(float),
    }
)
SUMMARY_SPEC = Record(
    {
        "epochs_planned": int,
        "epochs_completed": int,
        "first_epoch_s": Nullable(float),
        "steady_epoch_s": Nullable(_STATS_SPEC),
        "steady_images_per_s": Nullable(float),
        "steady_mfu": Nullable(float),
        "target_top1": float,
        "time_to_target_s": Nullable(float),
        "epochs_to_target": Nullable(int),
        "best_test_top1": Nullable(float),
        "best_epoch": Nullable(int),
        "final_test_top1": Nullable(float),
        "total_train_s": float,
        "total_eval_s": float,
        "total_energy_j": Nullable(float),
        "diverged_at_epoch": Nullable(int),
    }
)
TRAINING_SPEC = Record(
    {
        "config": dict,
        "recipe": Record(
            {
                "epochs": int,
                "batch_size": int,
                "lr": float,
                "momentum": float,
                "weight_decay": float,
                "milestones": [int],
                "step_size": Nullable(int),
                "gamma": float,
                "label_smoothing": float,
            }
        ),
        "options": Record(
            {
                "device": str,
                "precision": OneOf("fp32", "tf32", "bf16", "fp16"),
                "channels_last": bool,
                "compile": bool,
                "compile_mode": str,
                "seed": int,
                "target_top1": float,
                "auto_batch": bool,
            }
        ),
        "accel": Record(
            {
                "device": str,
                "device_name": str,
                "precision": str,
                "channels_last": bool,
                "compile": bool,
                "compile_mode": Nullable(str),
                "cudnn_benchmark": bool,
                "peak_flops": Nullable(float),
            }
        ),
        "dataset": Record(
            {
                "name": str,
                "synthetic": bool,
                "source": str,
                "num_classes": int,
                "image_size": int,
                "train_images": int,
                "test_images": int,
            }
        ),
        "model": Record(
            {
                "name": str,
                "block": OneOf("bottleneck", "basic"),
                "stem": OneOf("imagenet", "cifar"),
                "radix": int,
                "cardinality": int,
                "num_classes": int,
                "params": int,
                "macs": int,
                "flops_per_train_image": int,
            }
        ),
        "batch_size": int,
        "failed_batch_sizes": [int],
        "init": Nullable(Record({"path": str, "source": str, "skipped": [str]})),
        "resumed_from_epoch": Nullable(int),
        "epochs": [EPOCH_SPEC],
        "summary": SUMMARY_SPEC,
        "files": Record({"checkpoint": str, "epoch_log": str}),
    }
)


# The deployment section: DeployResult.to_dict(). Targets are strict (reports read every key);
# build records (export, int8, ort, pt2e) are provenance and only need to be objects.
_TIMES_MS = Nullable(_STATS_SPEC)
TARGET_SPEC = Record(
    {
        "target": str,
        "runtime": str,
        "artifact": str,
        "status": OneOf("ok", "skipped"),
        "reason": Nullable(str),
        "threads": Nullable(int),
        "load_s": Nullable(float),
        "first_inference_s": Nullable(float),
        "latency_ms": _TIMES_MS,
        "throughput": Nullable(MapOf({"images_per_s": float, "batch_ms": _STATS_SPEC})),
        "images_timed": Nullable(int),
        "avg_ms_per_image": Nullable(float),
        "avg_ms_per_image_small": Nullable(float),
        "top1_full": Nullable(float),
        "top1_small": Nullable(float),
        "images_full": Nullable(int),
        "images_small": Nullable(int),
        "agreement_top1_pct": Nullable(float),
        "max_prob_diff": Nullable(float),
        "rss_before_load_bytes": Nullable(int),
        "peak_rss_bytes": Nullable(int),
    },
    extra=True,
)
DEPLOYMENT_SPEC = Record(
    {
        "config": dict,
        "environment": Record({"usable_cpus": int, "threads": int, "cgroup": dict}, extra=True),
        "artifacts": Record({"files": MapOf(str), "sizes_bytes": MapOf(Nullable(int))}, extra=True),
        "targets": [TARGET_SPEC],
        "demo": {"index": int, "label": str, "classes": [str], "probs": MapOf([float])},
    }
)

SECTION_SPECS: dict[str, Any] = {
    "training": Record({"runs": [TRAINING_SPEC], "transfer": Nullable(TRAINING_SPEC)}),
    "deployment": DEPLOYMENT_SPEC,
}

ENVIRONMENT_SPEC = Record({"python": dict, "cpu": dict, "versions": dict}, extra=True)


def result_spec() -> Record:
    """The envelope, built on demand so later changes to SECTION_SPECS take effect."""
    fields_: dict[str, Any] = {
        "schema_version": int,
        "kind": OneOf(*KINDS),
        "run_id": str,
        "created": IsoTime,
        "command": [str],
        "seed": int,
        "environment": ENVIRONMENT_SPEC,
        "config": dict,
    }
    fields_.update({name: Optional(spec) for name, spec in SECTION_SPECS.items()})
    return Record(fields_)


_JSON_NAMES = {
    type(None): "null",
    bool: "bool",
    int: "int",
    float: "number",
    str: "str",
    list: "list",
    dict: "object",
}


def _type_name(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(value: Any, spec: Any, path: str) -> str | None:
    """Return 'path: problem' for the first mismatch, or None when `value` matches."""
    where = path or "(top level)"

    def expected(what: str) -> str:
        return f"{where}: expected {what}, got {_type_name(value)}"

    if isinstance(spec, _Anything):
        return None
    if isinstance(spec, Nullable):
        return None if value is None else _check(value, spec.spec, path)
    if isinstance(spec, Optional):
        raise TypeError(f"Optional is only valid as an object field spec (at {where})")
    if spec is bool:
        return None if isinstance(value, bool) else expected("bool")
    if spec is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else expected("int")
    if spec is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else expected("number")
    if spec is str:
        return None if isinstance(value, str) else expected("str")
    if spec is dict:
        return None if isinstance(value, dict) else expected("object")
    if spec is list:
        return None if isinstance(value, list) else expected("list")
    if isinstance(spec, _IsoTime):
        return None if _is_iso_time(value) else expected("ISO-8601 date-time string")
    if isinstance(spec, OneOf):
        if value in spec.values and not isinstance(value, bool | dict | list):
            return None
        return f"{where}: expected one of {list(spec.values)}, got {value!r}"
    if isinstance(spec, list):
        if len(spec) != 1:
            raise TypeError(f"a list spec holds exactly one item spec (at {where})")
        if not isinstance(value, list):
            return expected("list")
        for i, item in enumerate(value):
            problem = _check(item, spec[0], f"{path}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            return expected("object")
        for key, item in value.items():
            problem = _check(item, spec.spec, _join(path, str(key)))
            if problem:
                return problem
        return None
    if isinstance(spec, dict):
        return _check(value, Record(spec), path)
    if isinstance(spec, Record):
        return _check_record(value, spec, path, expected)
    raise TypeError(f"not a schema spec: {spec!r} (at {where})")


def _check_record(
    value: Any, spec: Record, path: str, expected: Callable[[str], str]
) -> str | None:
    if not isinstance(value, dict):
        return expected("object")
    where = path or "(top level)"
    for key, field_spec in spec.fields.items():
        optional = isinstance(field_spec, Optional)
        if key not in value:
            if optional:
                continue
            return f"{where}: missing required key '{key}'"
        problem = _check(value[key], field_spec.spec if optional else field_spec, _join(path, key))
        if problem:
            return problem
    if not spec.extra:
        unknown = [k for k in value if k not in spec.fields]
        if unknown:
            return f"{where}: unexpected key '{unknown[0]}'"
    return None


def _is_iso_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value[:-1] + "+00:00" if value.endswith("Z") else value  # 3.10 rejects "Z"
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return "T" in value or " " in value


def validate(obj: Any, spec: Any, *, name: str = "result") -> None:
    """Raise BenchError '<name>: <json path>: <problem>' for the first mismatch."""
    problem = _check(obj, spec, "")
    if problem:
        raise BenchError(f"{name}: {problem}")


def write_result(path: str | os.PathLike[str], result: dict[str, Any]) -> None:
    """Validate against the envelope, then write atomically."""
    validate(result, result_spec(), name=str(path))
    atomic_write_json(path, result)


def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate a result, refusing foreign files and files from newer versions."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchError(f"result file not found: {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"cannot read result file {source}: {exc}") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchError(f"{source} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
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
    if version > SCHEMA_VERSION:
        raise BenchError(
            f"{source.name} has schema_version {version}; this resnest-bench reads up to "
            f"{SCHEMA_VERSION}: upgrade resnest-bench"
        )
    validate(obj, result_spec(), name=str(source))
    return obj
