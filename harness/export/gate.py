"""The int8 accuracy gate every runtime's quantizer goes through.

Candidates are built lazily, in the order given, and each is scored on held-out images; the
first within `max_drop_pts` of fp32 wins. When none is, the least lossy one is kept and marked
outside the limit: it is measured and reported, and ships only if the user allowed the loss.
The candidates: all int8 first, then the sensitivity-ranked mixed-precision variants
(harness.export.sensitivity), each keeping a few more of the most sensitive layers fp32. Every
attempt is recorded with the layers it kept fp32, its file size and what it cost to build.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from resnest_bench.harness.data import ImageSet, normalize
from resnest_bench.harness.errors import BenchError, one_line
from resnest_bench.harness.results.deployment import Int8Attempt, Int8Record, Int8Settings
from resnest_bench.harness.runtimes.base import Runtime

Plan = tuple[str, "tuple[str, ...] | Exception"]  # (variant, layers kept fp32) or why not


@dataclass(frozen=True)
class GateData:
    """What every quantizer is calibrated and judged on, in the model's own preprocessing:
    a class-balanced subset of `calibration_images` training images (drawn with `seed`), and
    held-out images that must not overlap them. `calibration_method` is how activation ranges
    are drawn from them (minmax, entropy, percentile: each quantizer records what it used)."""

    calibration: ImageSet
    calibration_images: int
    heldout: ImageSet
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    max_drop_pts: float
    allow_loss: bool = False
    threads: int | None = None
    seed: int = 0
    calibration_method: str = "minmax"

    def __post_init__(self) -> None:
        if len(self.heldout) == 0:
            raise BenchError("int8 accuracy check needs at least one held-out image")

    @cached_property
    def calibration_x(self) -> np.ndarray:
        from resnest_bench.harness.data.split import stratified_subset

        chosen = stratified_subset(self.calibration, self.calibration_images, self.seed)
        return normalize(chosen.images, self.mean, self.std).numpy()

    @cached_property
    def heldout_x(self) -> np.ndarray:
        return normalize(self.heldout.images, self.mean, self.std).numpy()

    @property
    def heldout_y(self) -> np.ndarray:
        return self.heldout.labels.numpy()

    @cached_property
    def ranking_x(self) -> np.ndarray:
        """Training images (class-balanced) that sensitivity ranking compares outputs on."""
        from resnest_bench.harness.data.split import stratified_subset
        from resnest_bench.harness.export.sensitivity import RANKING_IMAGES

        chosen = stratified_subset(self.calibration, RANKING_IMAGES, self.seed + 1)
        return normalize(chosen.images, self.mean, self.std).numpy()

    @cached_property
    def quick_calibration_x(self) -> np.ndarray:
        """Fewer class-balanced training images, to calibrate the ranking's quick variants."""
        from resnest_bench.harness.data.split import stratified_subset
        from resnest_bench.harness.export.sensitivity import RANKING_CALIBRATION

        chosen = stratified_subset(self.calibration, RANKING_CALIBRATION, self.seed)
        return normalize(chosen.images, self.mean, self.std).numpy()

    def scorer(self, runtime: Callable[..., Runtime]) -> Callable[[Path], float]:
        """artifact file -> its held-out top-1 (%), run by a fresh `runtime` with our threads:
        how every converted model (fp32 and each int8 candidate) is judged."""

        def score(path: Path) -> float:
            loaded = runtime(threads=self.threads)
            loaded.load(path)
            return self.top1(loaded.run)

        return score

    def top1(self, logits_of: Callable[[np.ndarray], np.ndarray]) -> float:
        """Held-out top-1 (%) of a model given as batch -> logits, in batches of 64."""
        x = self.heldout_x
        logits = np.concatenate([logits_of(x[i : i + 64]) for i in range(0, len(x), 64)])
        return top1_percent(logits, self.heldout_y)


def minmax_only(method: str, quantizer: str) -> str:
    """The calibration record of a quantizer that draws ranges by min/max alone: it says so
    when another method was asked for, rather than pretending."""
    if method == "minmax":
        return "minmax"
    return f"minmax ({method} is not offered by {quantizer})"


def top1_percent(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(np.mean(logits.argmax(1) == labels) * 100.0)


@dataclass(frozen=True)
class Candidate:
    """One way to quantize: its name, the nodes it keeps fp32, and how to build it (-> file)."""

    variant: str
    excluded: tuple[str, ...]
    build: Callable[[], Path]


@dataclass(frozen=True)
class GateOutcome:
    best: Int8Attempt
    path: Path  # the best candidate's file
    excluded: tuple[str, ...]
    attempts: list[Int8Attempt]


def run_gate(
    candidates: Iterable[Candidate],
    score: Callable[[Path], float],
    *,
    fp32_top1: float,
    max_drop_pts: float,
) -> GateOutcome:
    """Build and score candidates until one keeps accuracy; the least lossy one otherwise.
    A candidate that cannot be built or loaded is recorded with its reason and the next is
    tried; BenchError when none could be scored. Each attempt records the layers it kept
    fp32, its file's size and the seconds it took to build and score."""
    attempts: list[Int8Attempt] = []
    built: dict[str, tuple[Path, tuple[str, ...]]] = {}
    for candidate in candidates:
        named = {
            "variant": candidate.variant,
            "excluded_nodes": len(candidate.excluded),
            "kept_fp32": list(candidate.excluded),
        }
        started = time.perf_counter()
        try:
            path = candidate.build()
            top1 = score(path)
            size = artifact_bytes(path)
        except Exception as exc:  # a converter or runtime refusing one variant
            failure = one_line(exc)
            attempts.append(
                Int8Attempt(**named, top1=None, drop_pts=None, accepted=False, error=failure)
            )
            continue
        drop = fp32_top1 - top1
        attempt = Int8Attempt(
            **named,
            top1=top1,
            drop_pts=drop,
            accepted=drop <= max_drop_pts,
            size_bytes=size,
            seconds=time.perf_counter() - started,
        )
        attempts.append(attempt)
        built[candidate.variant] = (path, candidate.excluded)
        if attempt.accepted:
            break
    if not attempts:
        raise ValueError("the int8 gate needs at least one candidate")
    scored = [a for a in attempts if a.drop_pts is not None]
    if not scored:
        raise BenchError(f"no int8 variant could be built and run: {attempts[0].error}")
    best = next((a for a in scored if a.accepted), None) or min(scored, key=lambda a: a.drop_pts)
    path, excluded = built[best.variant]
    return GateOutcome(best=best, path=path, excluded=excluded, attempts=attempts)


def planned(
    plans: Iterable[Plan],
    folder: Path,
    suffix: str,
    quantize: Callable[[tuple[str, ...], Path], None],
) -> Iterable[Candidate]:
    """Candidates of (variant, kept layers) plans, each written by `quantize(kept, file)` into
    `folder`; a plan that is an error (a ranking that failed) becomes a candidate raising it."""
    for variant, kept in plans:
        out = folder / f"{variant}{suffix}"

        def build(kept: tuple[str, ...] | Exception = kept, out: Path = out) -> Path:
            if isinstance(kept, Exception):
                raise kept
            quantize(kept, out)
            return out

        yield Candidate(variant, () if isinstance(kept, Exception) else kept, build)


def gate_ladder(
    int8_path: Path,
    name: str,
    plans: Iterable[Plan],
    quantize: Callable[[tuple[str, ...], Path], None],
    score: Callable[[Path], float],
    *,
    fp32_top1: float,
    max_drop_pts: float,
) -> GateOutcome:
    """Run one converter's plans through the gate and move the chosen file to `int8_path` (an
    OpenVINO IR with its .bin). Each is written by `quantize(kept layers, file)` into a
    temporary folder beside `int8_path`, so a failed run leaves no half-built file there. The
    outcome's `path` is the chosen candidate's temporary name (a key for what its build
    recorded)."""
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=int8_path.parent) as work:
        outcome = run_gate(
            planned(plans, Path(work), int8_path.suffix, quantize),
            score,
            fp32_top1=fp32_top1,
            max_drop_pts=max_drop_pts,
        )
        for built, final in zip(
            artifact_parts(outcome.path), artifact_parts(int8_path), strict=True
        ):
            os.replace(built, final)
    return outcome


def int8_record(
    outcome: GateOutcome, path: Path, settings: Int8Settings, data: GateData, fp32_top1: float
) -> Int8Record:
    """The record of a gated int8 model now at `path` (named by its file name; sizes count an
    OpenVINO IR's .bin beside its .xml)."""
    best = outcome.best
    return Int8Record(
        path=path.name,
        size_bytes=artifact_bytes(path),
        variant=best.variant,
        settings=settings,
        fp32_top1=fp32_top1,
        int8_top1=best.top1,
        drop_pts=best.drop_pts,
        max_drop_pts=data.max_drop_pts,
        within_limit=best.accepted,
        allowed_loss=data.allow_loss and not best.accepted,
        heldout_images=len(data.heldout),
        calibration_images=settings.calibration_images,
        excluded_nodes=list(outcome.excluded),
        attempts=outcome.attempts,
    )


def artifact_parts(path: Path) -> tuple[Path, ...]:
    """The files one artifact is made of: an OpenVINO IR is its .xml plus the .bin of weights."""
    return (path, path.with_suffix(".bin")) if path.suffix == ".xml" else (path,)


def artifact_bytes(path: Path) -> int:
    """Bytes on disk of one artifact, all its parts."""
    return sum(part.stat().st_size for part in artifact_parts(path))
