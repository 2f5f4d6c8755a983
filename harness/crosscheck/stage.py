"""The cross-check: every CPU target of a run timed again by the harness and by an independent
peer (crosscheck.peers), in alternating rounds, so a target the harness runs slower (or faster)
than its own users would is caught, flagged, and never the headline.

Target by target, the harness's measuring process (measure.target, as the run used it) and the
peer's run `rounds` rounds of at least ROUND_S seconds each, taking turns who goes first; the
ratio harness/peer is taken within each round, so the host's drift cancels as in the run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from resnest_bench.harness.config import DeploySection, TimingSection
from resnest_bench.harness.crosscheck.peers import Peer, no_peer_reason, start_peer
from resnest_bench.harness.data import ImageSet
from resnest_bench.harness.errors import BenchError, one_line
from resnest_bench.harness.measure import threads
from resnest_bench.harness.measure.target import Job, TargetFailed, TargetProcess
from resnest_bench.harness.results.crosscheck import TOLERANCE, Crosscheck, CrosscheckRow
from resnest_bench.harness.results.deployment import Target, ThreadPolicy
from resnest_bench.harness.results.stats import RoundRatio

ROUND_S = 1.0  # benchmark_app times whole seconds: every round of both sides lasts >= 1 s
POOL = 16  # random images the harness's process cycles through (speed ignores the pixels)


def compare(target: str, peer: str, harness_s: list[float], peer_s: list[float]) -> CrosscheckRow:
    """The row of one target from its per-round medians (seconds, same rounds): ratio
    harness/peer per round, flagged beyond TOLERANCE."""
    ratios = [h / p for h, p in zip(harness_s, peer_s, strict=True) if p > 0]
    if not ratios:
        raise BenchError(f"{target}: no round with a peer figure")
    ratio = RoundRatio(
        median=statistics.median(ratios), low=min(ratios), high=max(ratios), rounds=len(ratios)
    )
    harness_ms = statistics.median(harness_s) * 1e3
    peer_ms = statistics.median(peer_s) * 1e3
    flag = None
    if abs(ratio.median - 1.0) > TOLERANCE:
        flag = (
            f"harness {harness_ms:.2f} ms is {ratio.median:.2f}x {peer}'s {peer_ms:.2f} ms "
            f"(more than {TOLERANCE:.0%} apart)"
        )
    return CrosscheckRow(
        target=target, peer=peer, harness_ms=harness_ms, peer_ms=peer_ms, ratio=ratio, flag=flag
    )


def run_crosscheck(
    directory: Path,
    files: dict[str, str],
    targets: list[Target],
    shape: tuple[int, int, int],
    policy: ThreadPolicy,
    section: DeploySection,
    *,
    step: Callable[[str, int, int], None] = lambda *_: None,
) -> Crosscheck:
    """Cross-check every ok CPU target whose artifact is in `directory` (`files`: artifact kind
    -> file name). A target or peer that fails is listed in `skipped`, the others go on."""
    batch_shape = (1, *shape)
    images = ImageSet(
        torch.randint(0, 256, (POOL, *shape), dtype=torch.uint8),
        torch.zeros(POOL, dtype=torch.int64),
    )
    timing = TimingSection(warmup=0, min_iters=_calls(section), min_seconds=ROUND_S)
    policy_env = {k: v for k, v in threads.environment(policy).items() if k == "OMP_WAIT_POLICY"}
    result = Crosscheck(
        threads=policy.threads,
        rounds=section.rounds,
        peer_environment=_described(policy_env),
    )
    chosen = [t for t in targets if t.ok]
    for index, target in enumerate(chosen):
        step(f"cross-check {target.target} against its peer", index, len(chosen))
        reason = no_peer_reason(target.runtime, target.device or "cpu")
        if reason is None and target.artifact not in files:
            reason = f"no {target.artifact} file in {directory}"
        if reason is not None:
            result.skipped[target.target] = reason
            continue
        path = directory / files[target.artifact]
        job = Job(
            target=target.target,
            runtime=target.runtime,
            artifact=target.artifact,
            path=path,
            test=images,
            mean=(0.5, 0.5, 0.5),
            std=(0.25, 0.25, 0.25),
            policy=policy,
            warmup=section.timing.warmup,
        )
        try:
            row = _pair(job, timing, section.rounds, batch_shape, policy_env)
        except (BenchError, TargetFailed, OSError) as exc:
            result.skipped[target.target] = one_line(exc)
            continue
        result.rows.append(row)
    return result


def _pair(
    job: Job,
    timing: TimingSection,
    rounds: int,
    shape: tuple[int, ...],
    policy_env: dict[str, str],
) -> CrosscheckRow:
    """Harness and peer on one artifact under the job's thread policy, taking turns for
    `rounds` rounds."""
    harness = TargetProcess(job)
    peer: Peer | None = None
    vendor: Peer | None = None
    try:
        harness.call("load")
        policy = job.policy
        peer, vendor = start_peer(
            job.runtime, job.path, policy.threads, shape, policy_env, not policy.ort_spinning
        )
        sides: dict[str, list[float]] = {"harness": [], "peer": [], "vendor": []}
        order = ["harness", "peer"] + (["vendor"] if vendor else [])
        for r in range(rounds):
            for side in order[r % len(order) :] + order[: r % len(order)]:
                if side == "harness":
                    sides[side].append(statistics.median(harness.call("round", timing=timing)))
                else:
                    runner = peer if side == "peer" else vendor
                    sides[side].append(runner.round(timing.min_iters, timing.min_seconds))
        row = compare(job.target, peer.name, sides["harness"], sides["peer"])
        if vendor is None:
            return row
        vendor_ms = statistics.median(sides["vendor"]) * 1e3
        return row.model_copy(update={"vendor": vendor.name, "vendor_ms": vendor_ms})
    finally:
        harness.close()
        for runner in (peer, vendor):
            if runner is not None:
                runner.close()


def _calls(section: DeploySection) -> int:
    """Calls per round: the run's own minimum, spread over its rounds, at least 10."""
    return max(10, math.ceil(section.timing.min_iters / section.rounds))


def _described(policy_env: dict[str, str]) -> str:
    shared = " ".join(f"{k}={v}" for k, v in policy_env.items())
    base = "a clean environment (PATH, HOME, locale, virtualenv only)"
    return f"{base} plus the shared-host setting {shared}" if shared else base


def crosscheck_published(run_dir: Path, *, rounds: int | None = None) -> list[str]:
    """Cross-check a published run's CPU targets on its own artifacts (run_dir/artifacts), then
    write the updated result.json and re-render its report; returns the files written."""
    from resnest_bench.harness.report.run import write_report
    from resnest_bench.harness.results import read_result
    from resnest_bench.harness.store.atomic import atomic_write_json

    result = read_result(run_dir / "result.json")
    deployment = result.deployment
    if deployment is None or deployment.data is None:
        raise BenchError(f"{run_dir} has no deployment to cross-check (a train-only run?)")
    artifacts = run_dir / "artifacts"
    if not artifacts.is_dir():
        raise BenchError(f"{artifacts} is missing: the run was published without its artifacts")
    section = DeploySection.model_validate(deployment.config)
    if rounds is not None:
        section = section.model_copy(update={"rounds": rounds})
    policy = deployment.environment.thread_policy or threads.choose(section.threads, "auto")
    size = deployment.data.image_size
    check = run_crosscheck(
        artifacts, deployment.artifacts.files, deployment.targets, (3, size, size), policy, section
    )
    updated = result.model_copy(
        update={"deployment": deployment.model_copy(update={"crosscheck": check})}
    )
    atomic_write_json(run_dir / "result.json", updated.model_dump(mode="json"))
    return ["result.json", *write_report(run_dir, updated)]
