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

from resnest_bench.harness.config import DeploySection, TimingSection
from resnest_bench.harness.host import load as hostload
from resnest_bench.harness.measure.target import OutOfMemory, TargetFailed
from resnest_bench.harness.results.stats import Stats
from resnest_bench.harness.rounds import run_rounds


class Handle(Protocol):
    def call(self, op: str, **kwargs: Any) -> Any: ...

    def close(self) -> None: ...


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
    """Outcomes per target, in the handles' order; the rounds of each memory group (ratios are
    taken within a group, against its reference); the host's load per round and overall."""

    outcomes: dict[str, Outcome]
    group_rounds: list[dict[str, list[list[float]]]]
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


# A target not yet loaded is assumed to need this much more than the largest one loaded so far
# (peak RSS): the next group starts rather than risk the budget's OOM killer.
ROOM_MARGIN = 1.25


def run_session(
    handles: Mapping[str, Handle],
    section: DeploySection,
    *,
    timed_images: int,
    step: Callable[[str, int, int], None] = lambda *_: None,
    snapshot: Callable[[], hostload.HostSnapshot] = hostload.snapshot,
    room: Callable[[], int | None] = lambda: None,
) -> Session:
    """Load the targets, time them in section.rounds interleaved rounds, then throughput (in
    as many rounds per batch) and accuracy; step(description, done, total) announces each step
    as it starts (progress).

    Targets load one by one while the memory budget has room (`room()`: bytes left, None:
    unbounded) for one more as large as the largest so far. When it has not, the targets
    loaded are timed as one group and closed, all but the first (the reference), which is
    timed again beside every later group: on a 4 GiB device every runtime still runs, side by
    side with the reference, without all of them in memory at once."""
    outcomes = {name: Outcome() for name in handles}
    names = list(handles)
    reference = names[0] if names else None
    group_rounds: list[dict[str, list[list[float]]]] = []
    per_group = section.rounds * (1 + len(section.throughput_batches))
    total = [2 * len(handles) + per_group]  # another per_group for each further group
    done = iter(itertools.count())

    def announce(description: str) -> None:
        step(description, min(next(done), total[0] - 1), total[0])

    def ask(name: str, op: str, **kwargs: Any) -> Any:
        outcome = outcomes[name]
        if outcome.failure is not None:
            return None
        try:
            return handles[name].call(op, **kwargs)
        except TargetFailed as exc:
            outcome.failure = str(exc)
            return None

    def load(name: str) -> None:
        announce(f"load {name}")
        outcomes[name].load = ask(name, "load")
        outcomes[name].peak_rss = ask(name, "rss")

    def fits_one_more() -> bool:
        left = room()
        largest = max((o.peak_rss or 0 for o in outcomes.values()), default=0)
        return left is None or left > ROOM_MARGIN * largest

    start = snapshot()
    round_loads: list[hostload.HostLoad] = []
    pending = names[:]
    while pending:
        first = not group_rounds
        if first:
            group = [pending.pop(0)]
            load(reference)
        else:  # the reference, loaded since the first group, is timed again beside this one
            group = [reference]
            total[0] += per_group
        while pending and (len(group) < 2 or fits_one_more()):
            name = pending.pop(0)
            load(name)
            group.append(name)
        rounds, loads = _time_group(
            {n: handles[n] for n in group}, outcomes, section, ask, announce, snapshot
        )
        round_loads += loads
        group_rounds.append(rounds)
        for name in group if first else group[1:]:  # the reference's figures: its first group's
            outcomes[name].rounds = rounds[name]
            announce(f"accuracy {name}")
            answer = ask(name, "accuracy", timed=timed_images)
            if answer is not None:
                outcomes[name].per_image_s, outcomes[name].logits = answer
            outcomes[name].peak_rss = ask(name, "rss")
        if pending:
            for name in group[1:]:
                handles[name].close()
    return Session(outcomes, group_rounds, round_loads, hostload.host_load(start, snapshot()))


def _time_group(
    group: Mapping[str, Handle],
    outcomes: dict[str, Outcome],
    section: DeploySection,
    ask: Callable[..., Any],
    announce: Callable[[str], None],
    snapshot: Callable[[], hostload.HostSnapshot],
) -> tuple[dict[str, list[list[float]]], list[hostload.HostLoad]]:
    """Batch-1 latency of one group in interleaved rounds, then each throughput batch in
    interleaved rounds; returns the latency rounds and the host's load in each. A target's
    throughput is kept from the first group it is timed in (the reference's: the first)."""
    per_round = round_timing(section.timing, section.rounds)
    side = f"{len(group)} targets side by side"
    marks = [snapshot()]

    def timer(name: str) -> Callable[[], list[float]]:
        return lambda: ask(name, "round", timing=per_round) or []

    def after_round(r: int) -> None:
        marks.append(snapshot())
        if r + 1 < section.rounds:
            announce(f"time {side}, round {r + 2}/{section.rounds}")

    announce(f"time {side}, round 1/{section.rounds}")
    samples = run_rounds({n: timer(n) for n in group}, section.rounds, on_round=after_round)
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
        timers = {name: batch_timer(name, batch) for name in group}
        per_target = run_rounds(timers, section.rounds, on_round=next_round)
        for name, per in per_target.items():
            calls = [t for times in per for t in times]
            if calls and name not in too_large and batch not in outcomes[name].throughput:
                outcomes[name].throughput[batch] = Stats.from_samples(calls)
    return samples, [hostload.host_load(a, b) for a, b in itertools.pairwise(marks)]
