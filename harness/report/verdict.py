"""The answer a deployment report opens with: which figures to trust, what to ship, one summary
table (speed-up, accuracy and its change, size, memory, verdict per target), and the exit code
that says the same to a script."""

from __future__ import annotations

from resnest_bench.harness.errors import Int8Rejected, PartlyFailed
from resnest_bench.harness.report import markdown as md
from resnest_bench.harness.results.deployment import Deployment, Int8Record, Target

EAGER = "torch-eager:fp32"  # the speed and accuracy reference, while it runs


SLOWER_THAN_ORT = 0.95  # below this share of its speed, the report says why


SUMMARY_HEAD = [
    "target",
    "speed-up vs eager (median, range)",
    "vs best fp32",
    "top-1",
    "change vs fp32",
    "file MiB",
    "peak RSS MiB",
    "verdict",
]


def top1_limit(deployment: Deployment) -> float:
    """The accuracy a target may lose vs fp32 and still be shipped (the int8 gate's limit)."""
    return float(deployment.config.get("int8_max_drop", 1.0))


def shippable(deployment: Deployment) -> Target | None:
    """The fastest unflagged target within the accuracy limit of PyTorch eager fp32, never
    one whose int8 model the gate rejected."""
    reference = _reference(deployment)
    limit = top1_limit(deployment)
    gated = deployment.artifacts.int8_by_kind()
    fits = [
        t
        for t in deployment.ok_targets()
        if t.speedup
        and not deployment.flag(t)
        and not (t.artifact in gated and gated[t.artifact].rejected)
        and (reference is None or reference.top1_full - (t.top1_full or 0.0) <= limit)
    ]
    return max(fits, key=lambda t: t.speedup.median, default=None)


def best_fp32(deployment: Deployment) -> Target | None:
    """The fastest cleanly measured fp32 target: the second yardstick beside eager."""
    fp32 = [
        t
        for t in deployment.ok_targets()
        if t.target.endswith(":fp32") and t.speedup and not deployment.flag(t)
    ]
    return max(fp32, key=lambda t: t.speedup.median, default=None)


def _vs(target: Target, yardstick: Target | None) -> str:
    if yardstick is None or target.speedup is None or yardstick.speedup is None:
        return md.MISSING
    return f"{target.speedup.median / yardstick.speedup.median:.2f}x"


def reference_line(deployment: Deployment) -> str:
    """What "eager" means in this run, and the fp32 runtime every target is also held against."""
    env = deployment.environment
    policy = env.thread_policy
    wait = policy.omp_wait_policy if policy and policy.omp_wait_policy else "unset (default)"
    best = best_fp32(deployment)
    eager = next((t for t in deployment.targets if t.target == EAGER), None)
    if eager is not None and not eager.ok:
        fallback = _reference(deployment)
        return (
            f"Reference: PyTorch eager fp32 {eager.status} ({eager.reason}); speed-ups and "
            f"accuracy changes are against {fallback.target if fallback else 'nothing'} "
            f"instead; the second yardstick is the fastest fp32 runtime"
            f"{f', {best.target}' if best else ' (none measured)'}."
        )
    return (
        f"Reference: PyTorch eager fp32 = `model(x)` under `torch.inference_mode()`, torch "
        f"{env.torch or '?'}, {env.threads} threads (`torch.set_num_threads`), OpenMP wait "
        f"policy {wait}; the second yardstick is the fastest fp32 runtime"
        f"{f', {best.target}' if best else ' (none measured)'} (column 'vs best fp32')."
    )


def _reference(deployment: Deployment) -> Target | None:
    """The accuracy reference: PyTorch eager fp32, or the target speed-ups fell back to."""
    measured = {t.target: t for t in deployment.ok_targets() if t.top1_full is not None}
    against = {t.speedup.against for t in measured.values() if t.speedup}
    return measured.get(EAGER) or next((measured[a] for a in against if a in measured), None)


def _verdict(
    target: Target,
    flag: str | None,
    best: Target | None,
    reference: Target | None,
    limit: float,
    int8: Int8Record | None = None,
) -> str:
    if int8 is not None and not int8.within_limit and target.ok:
        return int8_verdict(int8)  # the gate's answer first: it decides the exit code
    if not target.ok:
        return f"{target.status}: {target.reason}"
    if flag:
        return f"not comparable: {flag}"
    drop = reference.top1_full - target.top1_full if reference and target.top1_full else 0.0
    if drop > limit:
        return f"loses {drop:.2f} pts of top-1 (limit {limit:g})"
    if target is best:
        return f"SHIP: fastest within {limit:g} pts of fp32 top-1"
    if best is not None and target.speedup:
        return f"within the limit, {best.speedup.median / target.speedup.median:.2f}x slower"
    return "within the limit"


def speedup_text(target: Target) -> str:
    ratio = target.speedup
    if ratio is None:
        return md.MISSING
    return f"{ratio.median:.2f}x ({ratio.low:.2f}-{ratio.high:.2f}, {ratio.rounds} rounds)"


def summary_table(deployment: Deployment) -> str:
    """One row per target answering "what should I ship"."""
    reference, limit = _reference(deployment), top1_limit(deployment)
    best, fastest_fp32 = shippable(deployment), best_fp32(deployment)
    sizes = deployment.artifacts.sizes_bytes
    gated = deployment.artifacts.int8_by_kind()
    rows = []
    for t in deployment.targets:
        change = (
            f"{t.top1_full - reference.top1_full:+.2f} pts"
            if reference and t.ok and t.top1_full is not None
            else md.MISSING
        )
        rows.append(
            [
                t.target,
                speedup_text(t),
                _vs(t, fastest_fp32),
                md.points(t.top1_full),
                change,
                md.mib(sizes.get(t.artifact)),
                md.mib(t.peak_rss_bytes),
                _verdict(t, deployment.flag(t), best, reference, limit, gated.get(t.artifact)),
            ]
        )
    return md.table(SUMMARY_HEAD, rows)


def trust_line(deployment: Deployment) -> str:
    """The report's first line about the figures: trustworthy or not, and why."""
    host = deployment.host
    if host is None or host.trustworthy is None:
        return "**Trust: unknown** - the host's load could not be measured here."
    checked = deployment.crosscheck.flags() if deployment.crosscheck else {}
    reasons = [*host.reasons, *(f"{name}: cross-check: {why}" for name, why in checked.items())]
    if host.trustworthy and not checked:
        load = host.overall
        other = f"{load.other_cores:.2f}" if load and load.other_cores is not None else "?"
        return (
            f"**Trust: figures trustworthy** - host quiet while timing (other processes used "
            f"{other} cores), every row's figures agree, ratios from {deployment.rounds} "
            "interleaved rounds."
        )
    return "**Trust: NOT trustworthy** - " + "; ".join(reasons) + "."


def headline(deployment: Deployment) -> str:
    """What to ship and the exit code the run returns (with every rejected int8 target), in
    one line; never a flagged figure; marked when the host was busy."""
    return f"{_ship_text(deployment)} {outcome_text(deployment)}"


def rejected_int8(deployment: Deployment) -> list[tuple[Int8Record, list[str]]]:
    """Each int8 model the gate rejected, with the targets that run it (its file's name when
    none was measured, as in the export step)."""
    gated = deployment.artifacts.int8_by_kind()
    found = []
    for record in deployment.artifacts.int8_records():
        if record.rejected:
            names = [
                t.target
                for t in deployment.targets
                if t.status != "skipped" and gated.get(t.artifact) is record
            ]
            found.append((record, names or [record.path]))
    return found


def rejected_int8_text(deployment: Deployment) -> str | None:
    """Every rejected int8 target with its loss and the limit, in one sentence; None if none."""
    found = rejected_int8(deployment)
    if not found:
        return None
    parts = [
        f"{', '.join(names)} (best variant `{r.variant}` loses {r.drop_pts:.2f} pts)"
        for r, names in found
    ]
    record = found[0][0]
    return (
        f"int8 REJECTED: {'; '.join(parts)}; limit {record.max_drop_pts:g} pts of fp32 top-1 "
        f"on {record.heldout_images} held-out images"
    )


def exit_code(deployment: Deployment) -> int:
    """What the run returns once its report is written (pipeline: int8 first, then failures)."""
    if rejected_int8(deployment):
        return Int8Rejected.exit_code
    if any(t.status == "failed" for t in deployment.targets):
        return PartlyFailed.exit_code
    return 0


def outcome_text(deployment: Deployment) -> str:
    """The run's exit code and why, for the first screen."""
    code, rejected = exit_code(deployment), rejected_int8_text(deployment)
    if rejected is not None:
        return f"**Exit {code}: {rejected}** (--allow-int8-loss ships them)."
    if code:
        failed = [t.target for t in deployment.targets if t.status == "failed"]
        return f"**Exit {code}**: failed: {', '.join(failed)}."
    return "Exit 0."


def _ship_text(deployment: Deployment) -> str:
    best, reference = shippable(deployment), _reference(deployment)
    if best is None or best.speedup is None:
        return "Ship: no target is both measured cleanly and within the accuracy limit."
    busy = " (host busy: treat as indicative)" if deployment.host and deployment.host.busy else ""
    change = (
        f", top-1 {best.top1_full:.2f}% ({best.top1_full - reference.top1_full:+.2f} pts vs fp32)"
        if reference and best.top1_full is not None
        else ""
    )
    fastest_fp32 = best_fp32(deployment)
    against_fp32 = (
        f", {_vs(best, fastest_fp32)} the fastest fp32 runtime's ({fastest_fp32.target})"
        if fastest_fp32 is not None and fastest_fp32 is not best
        else ""
    )
    against = best.speedup.against
    yardstick = "PyTorch eager" if against == EAGER else f"{against} (eager failed)"
    return (
        f"Ship: **{best.target}**, {best.speedup.median:.2f}x {yardstick}'s batch-1 speed "
        f"(range {best.speedup.low:.2f}-{best.speedup.high:.2f} over {best.speedup.rounds} "
        f"rounds){against_fp32}{change}{busy}."
    )


def best_throughput(target: Target) -> str:
    if not target.throughput:
        return md.MISSING
    batch, best = max(target.throughput.items(), key=lambda kv: kv[1].images_per_s)
    return f"{best.images_per_s:.1f} (b{batch})"


def int8_verdict(int8: Int8Record) -> str:
    if int8.within_limit:
        return "within the limit"
    loss = f"loses {int8.drop_pts:.2f} pts (limit {int8.max_drop_pts:g}) on held-out images"
    if int8.allowed_loss:
        return f"OUTSIDE the limit: {loss}, shipped because --allow-int8-loss was given"
    return f"REJECTED: {loss}; the run exits {Int8Rejected.exit_code} (--allow-int8-loss ships it)"
