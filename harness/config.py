"""The suite configuration: one pydantic model per section, one name per knob, defaults here only.

A suite file (TOML) is read once, `[quick]` merged over it when asked, command-line overrides
merged over that, and the result validated once into an immutable `Suite`. Each stage receives
only its own section (`suite.train`, `suite.deploy`, ...), under the same names the file uses.
Validation errors name the key and the value: `gpu.toml: train.lr: must be > 0, got -1`.
"""

from __future__ import annotations

import copy
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from resnest_bench.harness.choices import (
    CalibrationMethod,
    Compile,
    CompileMode,
    DatasetName,
    LrScaling,
    Precision,
    Spinning,
    Stem,
    Step,
)
from resnest_bench.harness.errors import BenchError, validation_message
from resnest_bench.harness.formats import check_formats
from resnest_bench.harness.names import checked_name, name_problem
from resnest_bench.harness.runtimes import RUNTIMES
from resnest_bench.harness.store.readfile import read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# Bundled suites live in the repo's benchmarks/; an installed copy (the images) names its folder.
SUITES_DIR = Path(
    os.environ.get("RESNEST_BENCH_SUITES", Path(__file__).resolve().parent.parent / "benchmarks")
)

SUITE_MAX_BYTES = 2**20  # the bundled suites are under 4 KB
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class Section(BaseModel):
    """Immutable, strict about unknown keys (a typo is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ModelSection(Section):
    """Which networks to build; None keeps each named config's own value."""

    names: tuple[str, ...] = Field(default=("resnest50d",), min_length=1)
    stem: Stem | None = None
    radix: int | None = Field(default=None, ge=0)
    cardinality: int | None = Field(default=None, ge=1)
    # A suite whose newest finished run left its model under the reports folder: that model is
    # deployed instead of training one, unless --checkpoint names another (cpu-runtime: "gpu").
    reuse_from: str | None = None

    @field_validator("names")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from resnest_bench.models import list_models

        known = list_models()
        for name in names:
            if name not in known:
                raise ValueError(f"unknown model {name!r}; known: {', '.join(known)}")
        return names


class DataSection(Section):
    """The data set; subsets cap the images used (None: all), small_subset is the seed's 50.
    `val_fraction` of each class is held out of a folder that has no train/ + test/ (or val/)."""

    dataset: DatasetName = "cifar10"
    folder: Path | None = None
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    train_subset: int | None = Field(default=None, ge=1)
    test_subset: int | None = Field(default=None, ge=1)
    small_subset: int = Field(default=50, ge=1)


class TrainSection(Section):
    """What to learn (the recipe) and how to run it. Defaults: the seed's CIFAR-10 recipe.

    The LR is multiplied by `gamma` at each milestone epoch, or every `step_size` epochs when
    that is set (then milestones must be empty; giving only step_size clears them).
    """

    epochs: int = Field(default=250, ge=1)
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=0.1, gt=0, allow_inf_nan=False)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=5e-4, ge=0, allow_inf_nan=False)
    milestones: tuple[int, ...] = (80, 210)
    step_size: int | None = Field(default=None, ge=1)
    gamma: float = Field(default=0.1, gt=0, le=1)
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    precision: Precision = "auto"
    channels_last: bool = False
    compile: Compile = False
    compile_mode: CompileMode = "default"
    target_accuracy: float = Field(default=0.89, gt=0, le=1)
    auto_batch: bool = False
    flip: bool = True  # random horizontal flip (off for digits, text, oriented images)
    crop_padding: int = Field(default=4, ge=0)  # random crop from this much zero padding
    # Data-parallel (torchrun): batch_size is per rank, the global batch is ranks x batch_size.
    lr_scaling: LrScaling = "none"
    sync_batchnorm: bool = False  # batch statistics over the global batch, not each rank's
    dist_timeout_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)  # a silent rank
    checkpoint_every: int = Field(default=1, ge=1)  # epochs between checkpoints; last always
    # CPU training threads; None: usable CPUs, or 1 on a shared host (measure.threads)
    threads: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _step_size_clears_milestones(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("step_size") and "milestones" not in data:
            return {**data, "milestones": ()}
        return data

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, milestones: tuple[int, ...]) -> tuple[int, ...]:
        if any(m < 1 for m in milestones) or list(milestones) != sorted(set(milestones)):
            raise ValueError("must be strictly increasing integers >= 1")
        return milestones

    @model_validator(mode="after")
    def _one_schedule(self) -> TrainSection:
        if self.step_size is not None and self.milestones:
            raise ValueError("milestones and step_size exclude each other; set one")
        return self

    def lr_at(self, epoch: int) -> float:
        """LR of 0-based `epoch`, with MultiStepLR/StepLR semantics (milestone 80 = 81st epoch)."""
        if self.step_size is not None:
            decays = epoch // self.step_size
        else:
            decays = sum(1 for m in self.milestones if m <= epoch)
        return self.lr * self.gamma**decays


class TransferSection(TrainSection):
    """Fine-tuning the best trained block on another data set; the seed's transfer recipe."""

    dataset: DatasetName = "cifar100"
    epochs: int = Field(default=200, ge=1)
    batch_size: int = Field(default=64, ge=1)
    milestones: tuple[int, ...] = ()
    step_size: int | None = Field(default=60, ge=1)


class TimingSection(Section):
    """How long to sample: warm-up calls, then at least min_iters AND min_seconds of calls;
    max_seconds (None = no cap) stops a very slow call early, even below min_iters."""

    warmup: int = Field(default=10, ge=0)
    min_iters: int = Field(default=50, ge=1)
    min_seconds: float = Field(default=2.0, ge=0, allow_inf_nan=False)
    max_seconds: float | None = Field(default=120.0, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _cap_above_floor(self) -> TimingSection:
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ValueError(
                f"max_seconds ({self.max_seconds}) is below min_seconds ({self.min_seconds})"
            )
        return self


class DeploySection(Section):
    """What to build and measure. `runtimes` None: every registered runtime, those this machine
    lacks reported as skipped; runtimes named explicitly must be available. `timed_images`
    None times every test image one by one (as the seed did)."""

    runtimes: tuple[str, ...] | None = None
    threads: int | None = Field(default=None, ge=1)
    spinning: Spinning = "auto"
    rounds: int = Field(default=5, ge=1)  # interleaved timing rounds (timing spread over them)
    # time every CPU target again beside the vendor's tool or a plain loop (harness.crosscheck)
    crosscheck: bool = False
    timing: TimingSection = TimingSection()
    throughput_batches: tuple[int, ...] = (8, 16, 32)
    timed_images: int | None = Field(default=None, ge=1)
    calibration_images: int = Field(default=512, ge=1)
    calibration_method: CalibrationMethod = "minmax"
    # What `export` builds (names: harness.formats.FORMATS); None: every format the
    # selected runtimes run (all installed ones when none are selected).
    formats: tuple[str, ...] | None = None
    int8_max_drop: float = Field(default=1.0, ge=0)
    allow_int8_loss: bool = False  # ship an int8 model outside int8_max_drop (else exit non-zero)
    parity_atol: float = Field(default=1e-3, gt=0)

    @field_validator("throughput_batches")
    @classmethod
    def _positive(cls, batches: tuple[int, ...]) -> tuple[int, ...]:
        if any(b < 1 for b in batches):
            raise ValueError(f"every batch must be >= 1, got {list(batches)}")
        return batches

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if names is None else check_formats(names)

    @field_validator("runtimes")
    @classmethod
    def _registered(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in names or ():
            if name not in RUNTIMES:
                raise ValueError(f"unknown runtime {name!r}; known: {', '.join(sorted(RUNTIMES))}")
        return names


class SweepSection(Section):
    """A sweep's search space around the suite's one model (model.names, model.* applied).

    Each axis lists values; an empty axis keeps the base config's value. `width` scales its
    base_planes and stem_width; `layers` gives blocks per stage. Points are the axes' product
    (a grid) or, when `samples` is set, that many drawn at random (seeded by the suite's seed)
    from the grid's points within budget. The budget (parameters, MACs per image at the data's
    size) is checked on the built network before anything trains; None: no limit.
    """

    block: tuple[Literal["bottleneck", "basic"], ...] = ()
    radix: tuple[Annotated[int, Field(ge=0)], ...] = ()
    cardinality: tuple[Annotated[int, Field(ge=1)], ...] = ()
    width: tuple[Annotated[float, Field(gt=0, allow_inf_nan=False)], ...] = ()
    layers: tuple[tuple[int, int, int, int], ...] = ()
    stem: tuple[Stem, ...] = ()
    samples: int | None = Field(default=None, ge=1)
    max_params: int | None = Field(default=5_000_000, ge=1)
    max_macs: int | None = Field(default=None, ge=1)

    @field_validator("block", "radix", "cardinality", "width", "layers", "stem")
    @classmethod
    def _distinct(cls, values: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(set(values)) != len(values):
            raise ValueError("values must be distinct")
        return values

    @field_validator("layers")
    @classmethod
    def _stage_depths(cls, values: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
        if any(min(depths) < 1 for depths in values):
            raise ValueError("every stage needs at least one block")
        return values


class Suite(Section):
    """A whole suite: what to run (steps) and every section's settings."""

    name: str
    description: str | None = None
    device: str = "auto"
    seed: int = Field(default=0, ge=0)
    steps: tuple[Step, ...] = Field(min_length=1)
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    train: TrainSection = TrainSection()
    transfer: TransferSection = TransferSection()
    deploy: DeploySection = DeploySection()
    sweep: SweepSection | None = None  # a sweep suite (`resnest-bench sweep`) has this table

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        """The name becomes the run folder's name (harness.names)."""
        problem = name_problem(name)
        if problem:
            raise ValueError(problem)
        return name

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not _DEVICE.match(device):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return device


def suite_path(name_or_path: str) -> Path:
    """A bundled suite by name (`gpu`, `cpu-runtime`) or a path to the user's own TOML file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    bundled = SUITES_DIR / f"{checked_name(name_or_path, 'suite name')}.toml"
    if bundled.is_file():
        return bundled
    known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.toml")))
    raise BenchError(
        f"unknown suite {name_or_path!r}; bundled suites: {known}, or give a .toml path"
    )


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`, nested tables key by key."""
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_suite(raw: dict[str, Any], label: str) -> Suite:
    """A Suite from a raw dict, or BenchError '<label>: <key>: <problem>, got <value>'."""
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        raise BenchError(f"{label}: {validation_message(exc)}") from None


def load_suite(
    name_or_path: str, *, quick: bool = False, overrides: dict[str, Any] | None = None
) -> tuple[Suite, Path]:
    """The suite named (bundled) or at a path, `[quick]` merged when asked, then `overrides`.

    The quick form is validated even when not asked for, so a typo in `[quick]` is found at once;
    the file's own tables first, so an error there is not blamed on `[quick]`.
    """
    path = suite_path(name_or_path)
    text = read_text(path, "suite file", SUITE_MAX_BYTES)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise BenchError(f"{path} nests its tables or arrays too deeply for a suite") from None
    quick_part = raw.pop("quick", {})
    if not isinstance(quick_part, dict):
        raise BenchError(f"{path}: quick: must be a table, got {quick_part!r}")
    full = validate_suite(raw, str(path))
    quick_form = validate_suite(merge(raw, quick_part), f"{path} [quick]")
    full = quick_form if quick else full
    if not overrides:
        return full, path
    settings = merge(full.model_dump(exclude_unset=True), overrides)
    return validate_suite(settings, str(path)), path


STEP_OF_COMMAND: dict[str, Step] = {"infer": "deploy"}  # the other step commands are their step


def step_suite(command: str, overrides: dict[str, Any]) -> Suite:
    """A one-step suite for the step commands (`train`, `transfer`, `export`, `infer`)."""
    step = STEP_OF_COMMAND.get(command, command)
    base = {"name": step, "steps": [step]}
    return validate_suite(merge(base, overrides), f"<{command} command>")
