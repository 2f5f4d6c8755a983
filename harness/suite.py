"""Declarative suite files (TOML): loaded once, validated with errors that name key and value.

A suite lists its steps and their settings; `[quick]` holds overrides merged over the rest by
`--quick`, so the quick form is the same suite made small, never a different code path.
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.runtimes import RUNTIMES
from resnest_bench.harness.schema import Nullable, OneOf, Optional, validate
from resnest_bench.models import list_models

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# Bundled suites live in the repo's benchmarks/; an installed copy (the images) names its folder.
SUITES_DIR = Path(
    os.environ.get("RESNEST_BENCH_SUITES", Path(__file__).resolve().parent.parent / "benchmarks")
)
STEPS = ("train", "transfer", "export", "deploy")
DATASETS = ("cifar10", "cifar100", "synthetic", "folder")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")

_TIMING = {"warmup": int, "min_iters": int, "min_seconds": float, "max_seconds": float}
_TRAIN = {
    "epochs": int,
    "batch_size": int,
    "lr": float,
    "milestones": [int],
    "step_size": int,
    "gamma": float,
    "momentum": float,
    "weight_decay": float,
    "label_smoothing": float,
    "precision": OneOf(*PRECISIONS),
    "channels_last": bool,
    "compile": bool,
    "target_accuracy": float,
    "auto_batch": bool,
}
_SECTIONS: dict[str, Any] = {
    "model": {
        "names": [str],
        "stem": OneOf("imagenet", "cifar"),
        "radix": int,
        "cardinality": int,
    },
    "data": {
        "dataset": OneOf(*DATASETS),
        "folder": str,
        "train_subset": Nullable(int),
        "test_subset": Nullable(int),
        "small_subset": int,
    },
    "train": _TRAIN,
    "transfer": {**_TRAIN, "dataset": OneOf(*DATASETS), "from": OneOf("best", "checkpoint")},
    "deploy": {
        "runtimes": [str],
        "timing": {k: Optional(v) for k, v in _TIMING.items()},
        "throughput_batches": [int],
        "timed_images": Nullable(int),
        "calibration_images": int,
        "int8_max_drop": float,
        "int8_strict": bool,
        "parity_atol": float,
        "threads": Nullable(int),
    },
}


def _optional_fields(section: dict[str, Any]) -> dict[str, Any]:
    return {
        key: spec if isinstance(spec, Optional) else Optional(spec) for key, spec in section.items()
    }


_SECTION_SPECS = {name: _optional_fields(fields) for name, fields in _SECTIONS.items()}
SUITE_SPEC: dict[str, Any] = {
    "name": str,
    "description": Optional(str),
    "device": OneOf("auto", "cpu", "cuda"),
    "seed": int,
    "steps": [OneOf(*STEPS)],
    **{name: spec for name, spec in _SECTION_SPECS.items()},
    "quick": Optional(_optional_fields(_SECTION_SPECS)),
}
_OPTIONAL_TOP = ("train", "transfer", "deploy", "data", "model")
SUITE_SPEC.update({key: Optional(SUITE_SPEC[key]) for key in _OPTIONAL_TOP})


@dataclass(frozen=True)
class Suite:
    """A validated suite: its name, where it came from, and its settings (quick already merged)."""

    name: str
    path: Path
    quick: bool
    settings: dict[str, Any]

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.settings.get(name, {}))

    @property
    def steps(self) -> tuple[str, ...]:
        return tuple(self.settings["steps"])


def resolve_path(name_or_path: str) -> Path:
    """A bundled suite by name (`gpu`, `cpu-runtime`) or a path to the user's own TOML file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    bundled = SUITES_DIR / f"{name_or_path}.toml"
    if bundled.is_file():
        return bundled
    known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.toml")))
    raise BenchError(
        f"unknown suite {name_or_path!r}; bundled suites: {known}, or give a .toml path"
    )


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check_values(settings: dict[str, Any], label: str) -> None:
    """Range checks the type spec cannot express; each names the key and the bad value."""
    positive = [
        ("train", "epochs"),
        ("train", "batch_size"),
        ("transfer", "epochs"),
        ("transfer", "batch_size"),
        ("deploy", "calibration_images"),
        ("data", "small_subset"),
    ]
    for section, key in positive:
        value = settings.get(section, {}).get(key)
        if value is not None and value < 1:
            raise BenchError(f"{label}: {section}.{key} must be >= 1, got {value}")
    for section in ("train", "transfer"):
        lr = settings.get(section, {}).get("lr")
        if lr is not None and lr <= 0:
            raise BenchError(f"{label}: {section}.lr must be > 0, got {lr}")
    for batch in settings.get("deploy", {}).get("throughput_batches", []):
        if batch < 1:
            raise BenchError(f"{label}: deploy.throughput_batches must be >= 1, got {batch}")
    if not settings.get("model", {}).get("names", ["x"]):
        raise BenchError(f"{label}: model.names must list at least one model")
    for name in settings.get("model", {}).get("names", []):
        if name not in list_models():
            raise BenchError(
                f"{label}: model.names: unknown model {name!r}; known: {', '.join(list_models())}"
            )
    for runtime in settings.get("deploy", {}).get("runtimes", []):
        if runtime not in RUNTIMES:
            known = ", ".join(sorted(RUNTIMES))
            raise BenchError(
                f"{label}: deploy.runtimes: unknown runtime {runtime!r}; known: {known}"
            )


def _validated(raw: dict[str, Any], path: Path, quick: bool) -> Suite:
    validate(raw, SUITE_SPEC, name=str(path))
    settings = _merge(raw, raw.get("quick", {})) if quick else copy.deepcopy(raw)
    settings.pop("quick", None)
    _check_values(settings, str(path))
    return Suite(name=raw["name"], path=path, quick=quick, settings=settings)


def with_overrides(suite: Suite, overrides: dict[str, Any]) -> Suite:
    """The suite with command-line values merged over it, validated like the file was."""
    raw = _merge(suite.settings, overrides)
    return _validated(raw, suite.path, quick=suite.quick)


def step_suite(step: str, overrides: dict[str, Any]) -> Suite:
    """A one-step suite for the step commands (`train`, `transfer`, `export`, `infer`)."""
    base = {"name": step, "device": "auto", "seed": 0, "steps": [step]}
    return _validated(_merge(base, overrides), Path(f"<{step} command>"), quick=False)


def load_suite(name_or_path: str, *, quick: bool = False) -> Suite:
    path = resolve_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"suite file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"cannot read suite file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path} is not valid TOML: {exc}") from None
    return _validated(raw, path, quick)
