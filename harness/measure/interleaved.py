"""All targets of a run timed side by side: loaded once, then batch-1 latency in interleaved
rounds (harness.rounds: the order rotates, ratios are taken within a round), then each
throughput batch in interleaved rounds too (a neighbour's burst is shared by every target, not
spent on one), then the accuracy pass, each target in turn, with the host's load recorded
around every latency round.

A handle is anything with `call(op, **kwargs)` answering the requests of measure.target (the
real one is TargetProcess); a handle that raises TargetFailed is marked failed with its one-line
reason, asked nothing more, and the others go on. A throughput batch that does not fit in
device memory (OutOfMemory) only ends that target's throughput: the batches that fit keep their
figures, larger ones are not tried, and `throughput_limit` says where it stopped.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from resnest_bench.harness import hostload
from resnest_bench.harness.config import DeploySection, TimingSection
from resnest_bench.harness.measure.target import OutOfMemory, TargetFailed
from resnest_bench.harness.results.stats import Stats
from resnest_bench.harness.rounds import run_rounds


class Handle(Protocol):
    def call(self, op: str, **kwargs: Any) -> Any: ...


@dataclass
class Outcome:
    """What one target produced; `failure` set means it stopped there (one line)."""

    load: dict[str, Any] | None = None
    rounds: list[list[float]] = field(default_factory=list)
    throughput: dict[int, Stats] = field(default_factory=dict)
    throughput_limit: str | None = None  # the batch that ran out of memory, and the largest fit
    per_image_s: list[float] = field(default_factory=list)
    logits: np.ndarray | None = None
    peak_rss: int | None = None
    failure: str | None = None


@dataclass
class Session:
    """Outcomes per target, in the handles' order, and the host's load per round and overall."""

    outcomes: dict[str, Outcome]
    round_loads: list[hostload.HostLoad]
    overall: hostload.HostLoad


def round_timing(timing: TimingSection, rounds: int) -> TimingSection:
    """One round's share of the suite's timing (warm-up is done once, at load)."""
    return TimingSection(
        warmup=0,
        min_iters=math.ceil(timing.min_iters / rounds),
        min_seconds=timing.min_seconds / rounds,
        max_seconds=timing.max_seconds / rounds if timing.max_seconds is not None else None,
    )


def run_session(
    handles: Mapping[str, Handle],
    section: DeploySection,
    *,
    timed_images: int,
    step: Callable[[str, int, int], None] = lambda *_: None,
    snapshot: Callable[[], hostload.HostSnapshot] = hostload.snapshot,
) -> Session:
    """Load every target, time them in section.rounds interleaved rounds, then throughput (in
    as many rounds per batch) and accuracy; step(description, done, total) announces each step
    as it starts (progress)."""
    outcomes = {name: Outcome() for name in handles}
    total = len(handles) * 2 + section.rounds * (1 + len(section.throughput_batches))
    done = iter(range(total + 1))

    def announce(description: str) -> None:
        step(description, next(done), total)

    def ask(name: str, op: str, **kwargs: Any) -> Any:
        outcome = outcomes[name]
        if outcome.failure is not None:
            return None
        try:
            return handles[name].call(op, **kwargs)
        except TargetFailed as exc:
            outcome.failure = str(exc)
            return None

    for name in handles:
        announce(f"load {name}")
        outcomes[name].load = ask(name, "load")

    per_round = round_timing(section.timing, section.rounds)

    def timer(name: str) -> Callable[[], list[float]]:
        return lambda: ask(name, "round", timing=per_round) or []

    start = snapshot()
    marks = [start]

    def after_round(r: int) -> None:
        marks.append(snapshot())
        if r + 1 < section.rounds:
            announce(f"time {len(handles)} targets side by side, round {r + 2}/{section.rounds}")

    announce(f"time {len(handles)} targets side by side, round 1/{section.rounds}")
    samples = run_rounds({n: timer(n) for n in handles}, section.rounds, on_round=after_round)
    for name, per in samples.items():
        outcomes[name].rounds = per
    too_large: dict[str, int] = {}  # per target: the smallest batch that ran out of memory

    def batch_timer(name: str, batch: int) -> Callable[[], list[float]]:
        def one_round() -> list[float]:
            if name in too_large:
                return []
            try:
                return ask(name, "throughput", batch=batch, timing=per_round) or []
            except OutOfMemory as exc:
                too_large[name] = batch
                fit = max((b for b in outcomes[name].throughput if b < batch), default=None)
                outcomes[name].throughput_limit = f"out of memory at {exc}; largest that fit: {fit}"
                return []

        return one_round

    for batch in section.throughput_batches:
        label = f"throughput of {batch}-image batches side by side"

        def next_round(r: int, label: str = label) -> None:
            if r + 1 < section.rounds:
                announce(f"{label}, {r + 2} of {section.rounds}")

        announce(f"{label}, 1 of {section.rounds}")
        timers = {name: batch_timer(name, batch) for name in handles}
        per_target = run_rounds(timers, section.rounds, on_round=next_round)
        for name, per in per_target.items():
            calls = [t for times in per for t in times]
            if calls and name not in too_large:
                outcomes[name].throughput[batch] = Stats.from_samples(calls)
    for name in handles:
        announce(f"accuracy {name}")
        answer = ask(name, "accuracy", timed=timed_images)
        if answer is not None:
            outcomes[name].per_image_s, outcomes[name].logits = answer
        outcomes[name].peak_rss = ask(name, "rss")
    end = snapshot()
    loads = [hostload.host_load(a, b) for a, b in itertools.pairwise(marks)]
    return Session(outcomes, loads, hostload.host_load(start, end))
