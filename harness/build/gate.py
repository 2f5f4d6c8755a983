"""The int8 accuracy gate every runtime's quantizer goes through.

Candidates are built lazily, in the order given, and each is scored on held-out images; the
first within `max_drop_pts` of fp32 wins. When none is, the least lossy one is kept and marked
outside the limit: it is measured and reported, and ships only if the user allowed the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from resnest_bench.harness.results.deployment import Int8Attempt, Int8Record, Int8Settings


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
    """Build and score candidates until one keeps accuracy; the least lossy one otherwise."""
    attempts: list[Int8Attempt] = []
    built: dict[str, tuple[Path, tuple[str, ...]]] = {}
    for candidate in candidates:
        path = candidate.build()
        top1 = score(path)
        drop = fp32_top1 - top1
        attempt = Int8Attempt(
            variant=candidate.variant,
            excluded_nodes=len(candidate.excluded),
            top1=top1,
            drop_pts=drop,
            accepted=drop <= max_drop_pts,
        )
        attempts.append(attempt)
        built[candidate.variant] = (path, candidate.excluded)
        if attempt.accepted:
            break
    if not attempts:
        raise ValueError("the int8 gate needs at least one candidate")
    best = next((a for a in attempts if a.accepted), None) or min(
        attempts, key=lambda a: a.drop_pts
    )
    path, excluded = built[best.variant]
    return GateOutcome(best=best, path=path, excluded=excluded, attempts=attempts)


def int8_record(
    outcome: GateOutcome,
    path: Path,
    settings: Int8Settings,
    *,
    fp32_top1: float,
    max_drop_pts: float,
    allow_loss: bool,
    heldout_images: int,
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
        max_drop_pts=max_drop_pts,
        within_limit=best.accepted,
        allowed_loss=allow_loss and not best.accepted,
        heldout_images=heldout_images,
        calibration_images=settings.calibration_images,
        excluded_nodes=list(outcome.excluded),
        attempts=outcome.attempts,
    )


def artifact_bytes(path: Path) -> int:
    """Bytes on disk of one artifact: an OpenVINO IR is its .xml plus the .bin of weights."""
    weights = path.with_suffix(".bin")
    return path.stat().st_size + (weights.stat().st_size if path.suffix == ".xml" else 0)
