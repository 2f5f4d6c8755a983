"""Markdown for a Deployment: first the answer (trust verdict, one "what should I ship" table),
then the seed's Tables 4 and 5, extended with latency percentiles, throughput, memory, sizes
and the int8 story.
"""

from __future__ import annotations

from dataclasses import dataclass

from resnest_bench.harness.errors import Int8Rejected, PartlyFailed
from resnest_bench.harness.report import markdown as md
from resnest_bench.harness.results.deployment import (
    ConvertedRecord,
    DelegateCoverage,
    Deployment,
    Int8Attempt,
    Int8Record,
    Target,
)

TARGET_HEAD = [
    "target",
    "load s",
    "first inference ms",
    "avg ms/image (test set)",
    "batch-1 latency ms",
    "speed-up vs eager (median of rounds)",
    "best throughput img/s",
    "batch-1 GOP/s (% of CPU peak)",
    "top-1 full",
    "top-1 small",
    "agreement vs eager",
    "peak RSS MiB",
    "artifact MiB",
]


FP32_REFERENCE = "ort-cpu:fp32"  # what each runtime's own fp32 file is held against
EAGER = "torch-eager:fp32"  # the speed and accuracy reference, while it runs
SLOWER_THAN_ORT = 0.95  # below this share of its speed, the report says why

ABBREVIATIONS = (
    "Abbreviations: ORT = ONNX Runtime; fp32 = 32-bit float; int8 = 8-bit integer weights and "
    "activations (static quantization, QDQ = quantize-dequantize nodes); eager = PyTorch eager "
    "mode, the reference; p50/p90/p99 = 50th/90th/99th percentile of per-call time; cv = "
    "coefficient of variation (std/mean); n = number of samples; RSS = resident set size "
    "(memory held by the process); MiB = 2^20 bytes; pts = percentage points; img/s = images "
    "per second; b8 = batch of 8; dp = softmax probability difference."
)
KEPT_SHOWN = 6  # layers kept fp32 named per int8 attempt; the rest counted
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
        return _int8_verdict(int8)  # the gate's answer first: it decides the exit code
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


def _best_throughput(target: Target) -> str:
    if not target.throughput:
        return md.MISSING
    batch, best = max(target.throughput.items(), key=lambda kv: kv[1].images_per_s)
    return f"{best.images_per_s:.1f} (b{batch})"


def target_rows(deployment: Deployment) -> list[list[str]]:
    """One row per target in TARGET_HEAD order; skipped targets say why."""
    sizes = deployment.artifacts.sizes_bytes
    rows = []
    for t in deployment.targets:
        if not t.ok:
            rows.append([t.target, f"{t.status}: {t.reason}"] + [md.MISSING] * 11)
            continue
        latency = t.latency_ms
        first_ms = t.first_inference_s * 1e3 if t.first_inference_s is not None else None
        rows.append(
            [
                f"{t.target} [FLAGGED]" if deployment.flag(t) else t.target,
                md.num(t.load_s),
                md.num(first_ms),
                f"{md.num(t.avg_ms_per_image)} (n={t.images_timed})",
                md.stats(latency),
                speedup_text(t),
                _best_throughput(t),
                _peak_share(t),
                f"{md.points(t.top1_full)} (n={t.images_full})",
                f"{md.points(t.top1_small)} (n={t.images_small})",
                f"{md.points(t.agreement_top1_pct)}, max dp {md.num(t.max_prob_diff, 2)}",
                md.mib(t.peak_rss_bytes),
                md.mib(sizes.get(t.artifact)),  # targets name their artifact kind
            ]
        )
    return rows


def _peak_share(target: Target) -> str:
    if target.gops is None:
        return md.MISSING
    share = f" ({target.peak_pct:.1f}%)" if target.peak_pct is not None else ""
    return f"{target.gops:.1f}{share}"


def peak_line(deployment: Deployment) -> str | None:
    """The CPU's peak per precision and how it was derived (what '% of CPU peak' divides by)."""
    peak, macs = deployment.environment.cpu_peak, deployment.macs
    if peak is None or macs is None:
        return None
    figures = ", ".join(f"{p} {g:,.0f} GOP/s" for p, g in peak.gops.items())
    return (
        f"- CPU peak (paper figure, harness.host.peak): {figures}; {peak.how}. Achieved = 2 x "
        f"{macs / 1e6:,.1f}M MACs per image / batch-1 median."
    )


def throughput_table(deployment: Deployment) -> str:
    targets = [t for t in deployment.ok_targets() if t.throughput]
    batches = sorted({int(b) for t in targets for b in t.throughput})
    rows = []
    for t in targets:
        cells = [t.target]
        for b in batches:
            point = t.throughput.get(str(b))
            cells.append(
                f"{point.images_per_s:.1f} (cv {100 * point.batch_ms.cv:.1f}%, "
                f"n={point.batch_ms.n})"
                if point
                else md.MISSING
            )
        rows.append(cells)
    return md.table(["target", *[f"batch {b} img/s" for b in batches]], rows)


def demo_table(deployment: Deployment) -> str:
    """The seed's Table 4: per-class scores of one test image, every runtime side by side."""
    demo = deployment.demo
    names = list(demo.probs)
    if not names:
        return ""
    reference = demo.probs[names[0]]
    order = sorted(range(len(demo.classes)), key=lambda i: -reference[i])[:10]
    rows = [
        [str(rank + 1), demo.classes[i], *[f"{demo.probs[n][i]:.6f}" for n in names]]
        for rank, i in enumerate(order)
    ]
    return (
        f"Table 4: softmax scores of test image #{demo.index} (true class: {demo.label}), "
        "top classes by the first runtime's score\n\n" + md.table(["#", "class", *names], rows)
    )


def artifacts_table(deployment: Deployment) -> str:
    artifacts = deployment.artifacts
    sizes = artifacts.sizes_bytes
    base = sizes.get("state_dict")
    rows = [
        [
            kind,
            artifacts.files.get(kind, md.MISSING),
            md.mib(size),
            f"{100 * size / base:.1f}%" if size and base else md.MISSING,
        ]
        for kind, size in sizes.items()
    ]
    return md.table(["artifact", "file", "MiB", "of state_dict"], rows)


def coverage_table(deployment: Deployment) -> str:
    """Per artifact, the share of its graph the runtime's delegate runs and what fell back."""
    rows = [
        [
            kind,
            cover.delegate,
            f"{cover.delegated_ops}/{cover.total_ops}",
            md.pct(cover.fraction, 1),
            _fallen(cover) or "none",
        ]
        for record in deployment.artifacts.converted().values()
        for kind, cover in record.coverage.items()
    ]
    if not rows:
        return ""
    head = ["artifact", "delegate", "ops delegated", "%", "not delegated (reference kernels)"]
    return "\n".join(["Delegate coverage", "", md.table(head, rows), ""])


def _fallen(cover: DelegateCoverage) -> str:
    """What a delegate left to reference kernels, by op name with counts ("" when nothing)."""
    return ", ".join(f"{op} x{n}" for op, n in sorted(cover.fallback.items()))


def _int8_verdict(int8: Int8Record) -> str:
    if int8.within_limit:
        return "within the limit"
    loss = f"loses {int8.drop_pts:.2f} pts (limit {int8.max_drop_pts:g}) on held-out images"
    if int8.allowed_loss:
        return f"OUTSIDE the limit: {loss}, shipped because --allow-int8-loss was given"
    return f"REJECTED: {loss}; the run exits {Int8Rejected.exit_code} (--allow-int8-loss ships it)"


def _int8_line(int8: Int8Record | None) -> str:
    if int8 is None:
        return "int8: not built"
    settings = int8.settings
    tried = "; ".join(_attempt_text(a) for a in int8.attempts)
    return (
        f"int8 ({settings.method}, {settings.quant_format}, per-channel "
        f"{settings.per_channel}, {settings.calibration} calibration on "
        f"{int8.calibration_images} training images; schemes for this CPU: "
        f"{', '.join(s.name for s in settings.schemes) or '-'}, because "
        f"{settings.scheme_reason}): "
        f"variant `{int8.variant}`, fp32 top-1 {md.points(int8.fp32_top1)} vs int8 "
        f"{md.points(int8.int8_top1)} on {int8.heldout_images} held-out images (limit "
        f"{int8.max_drop_pts} pts: {_int8_verdict(int8)}). Tried, in order (only the chosen "
        f"variant is timed, in its target's row): {tried}"
    )


def _attempt_text(attempt: Int8Attempt) -> str:
    """One attempt and its cost: accuracy, the layers it kept fp32, file size, build time."""
    if attempt.error is not None:
        return f"{attempt.variant}: FAILED ({attempt.error})"
    kept = ", ".join(f"`{_short(name)}`" for name in attempt.kept_fp32[:KEPT_SHOWN])
    more = len(attempt.kept_fp32) - KEPT_SHOWN
    kept += f" and {more} more" if more > 0 else ""
    cost = [
        f"{md.mib(attempt.size_bytes)} MiB" if attempt.size_bytes is not None else None,
        f"built and scored in {attempt.seconds:.0f} s" if attempt.seconds is not None else None,
    ]
    return (
        f"{attempt.variant}: top-1 {md.points(attempt.top1)} (drop "
        f"{md.num(attempt.drop_pts, 3)} pts, {attempt.excluded_nodes} nodes kept fp32"
        f"{f': {kept}' if kept else ''}"
        + "".join(f", {c}" for c in cost if c)
        + f"{', accepted' if attempt.accepted else ''})"
    )


def _short(name: str, width: int = 48) -> str:
    """A layer's name cut in the middle when long (LiteRT names a tensor by its whole module
    path): the end names the layer, the start the graph."""
    return name if len(name) <= width else f"{name[:12]}...{name[-(width - 15) :]}"


@dataclass(frozen=True)
class LatencyBar:
    """One target's batch-1 latency for a plot: median, whisker up to p99, and its own call
    count (targets run for a minimum time, so their counts differ)."""

    target: str
    median: float
    top: float
    n: int


def latency_series(deployment: Deployment) -> list[LatencyBar]:
    out = []
    for t in deployment.ok_targets():
        if t.latency_ms:
            ms = t.latency_ms
            out.append(LatencyBar(t.target, ms.median, ms.p99, ms.n))
    return out


def _host_lines(deployment: Deployment) -> list[str]:
    env, host = deployment.environment, deployment.host
    lines = []
    if env.thread_policy:
        lines.append(f"- Thread policy: {env.thread_policy.reason}.")
    if (peak := peak_line(deployment)) is not None:
        lines.append(peak)
    if host and host.overall:
        load = host.overall
        busy_rounds = [str(i + 1) for i, r in enumerate(host.rounds) if r.busy]
        lines.append(
            f"- Host load while timing ({load.seconds:.0f} s): load average "
            f"{md.num(load.load_1m_before)} before, {md.num(load.load_1m_after)} after; other "
            f"processes {md.num(load.other_cores)} cores; steal "
            f"{md.pct(load.steal_fraction, 1)}; {load.reason}"
            f"{'; busy rounds: ' + ', '.join(busy_rounds) if busy_rounds else ''}."
        )
    if host and len(host.groups) > 1:
        shown = "; ".join(", ".join(group) for group in host.groups)
        lines.append(
            f"- Memory: the targets did not fit in memory together, so they were timed in "
            f"{len(host.groups)} groups, each beside the reference (ratios within a group): "
            f"{shown}."
        )
    lines += [f"- {t.target} throughput: {t.batching}." for t in deployment.targets if t.batching]
    flagged = [(t.target, flag) for t in deployment.targets if (flag := deployment.flag(t))]
    lines += [
        f"- FLAGGED {name}: {flag}; its figures are not comparable." for name, flag in flagged
    ]
    on_gpu = [
        f"{t.target} on {t.device}" for t in deployment.targets if t.device not in (None, "cpu")
    ]
    if on_gpu:
        lines.append(
            f"- GPU-resident (inputs in GPU memory, timed between syncs): {', '.join(on_gpu)}."
        )
    lines += [
        f"- {t.target} throughput: {t.throughput_limit}."
        for t in deployment.targets
        if t.throughput_limit
    ]
    return lines


def deployment_section(deployment: Deployment, *, synthetic: bool = False) -> str:
    env = deployment.environment
    quota, memory = env.cgroup.cpu_quota_cores, env.cgroup.memory_bytes
    label = " (SYNTHETIC data: accuracies are smoke-test numbers)" if synthetic else ""
    return "\n".join(
        [
            f"## Deployment details{label}",
            "",
            f"Threads per runtime: {env.threads} (usable CPUs {env.usable_cpus}; "
            f"cgroup CPU quota {quota if quota is not None else 'none'}, memory limit "
            f"{md.mib(memory) + ' MiB' if memory else 'none'}); each target in its own process, "
            f"all timed side by side in {deployment.rounds or 1} interleaved rounds (order "
            "rotating) after an untimed warm-up; latency = batch 1, median (p90, p99, cv, n) "
            "pooled over the rounds; speed-up = median (range) of the per-round ratios; "
            "throughput per batch size timed in as many interleaved rounds, pooled.",
            *_host_lines(deployment),
            "",
            *_measured_tables(deployment, label),
            "Artifacts",
            "",
            artifacts_table(deployment),
            "",
            coverage_table(deployment),
            *_conversion_lines(deployment),
            *crosscheck_lines(deployment),
            *(f"- {_int8_line(r)}" for r in deployment.artifacts.int8_records() or [None]),
            *_data_lines(deployment),
        ]
    )


def _measured_tables(deployment: Deployment, label: str) -> list[str]:
    """Table 5, throughput and Table 4, each "not run" in one line when nothing was timed
    (an export builds and checks files only): an empty table reads like a broken report."""
    timed = bool(deployment.targets)
    throughput = any(t.throughput for t in deployment.ok_targets())
    return [
        f"Table 5: runtime comparison (accuracy, per-image time, size){label}",
        "",
        md.table(TARGET_HEAD, target_rows(deployment))
        if timed
        else "Not run: no runtime was timed (export builds and checks the files; the deploy "
        "step times them).",
        "",
        f"Throughput{label}",
        "",
        throughput_table(deployment) if throughput else "Not run: no throughput was timed.",
        "",
        demo_table(deployment),
        "",
    ]


CROSSCHECK_HEAD = [
    "target",
    "peer",
    "harness batch-1 ms",
    "peer batch-1 ms",
    "harness / peer (median, range)",
    "vendor tool ms (what it times)",
    "verdict",
]


def crosscheck_lines(deployment: Deployment) -> list[str]:
    """The cross-check's table: each CPU target's harness figure beside its peer's."""
    check = deployment.crosscheck
    if check is None:
        return []
    rows = [
        [
            row.target,
            row.peer,
            f"{row.harness_ms:.2f}",
            f"{row.peer_ms:.2f}",
            f"{row.ratio.median:.2f}x ({row.ratio.low:.2f}-{row.ratio.high:.2f}, "
            f"{row.ratio.rounds} rounds)",
            f"{row.vendor_ms:.2f} ({row.vendor})" if row.vendor_ms is not None else md.MISSING,
            f"FLAGGED: {row.flag}" if row.flag else f"agrees within {check.tolerance:.0%}",
        ]
        for row in check.rows
    ]
    return [
        "",
        "Cross-check against independent tools",
        "",
        f"Each CPU target timed again beside an independent peer (the vendor's benchmark "
        f"program where it times a call's wall time as the harness does, else a plain loop as "
        f"the runtime's documentation writes it) in {check.rounds} alternating rounds of at "
        f"least 1 s each, {check.threads} threads, batch {check.batch}; peers start with "
        f"{check.peer_environment}. A target more than {check.tolerance:.0%} away from its "
        "peer is flagged and never the headline. OpenVINO's benchmark_app is shown beside: it "
        "reports the plugin's InferRequest.latency, without the Python call around it.",
        "",
        md.table(CROSSCHECK_HEAD, rows) if rows else "No target could be cross-checked.",
        *(f"- {name}: not cross-checked: {why}." for name, why in check.skipped.items()),
        "",
    ]


def _conversion_lines(deployment: Deployment) -> list[str]:
    """Each runtime's own conversion: its fp32 speed against ONNX Runtime fp32's, its parity
    with PyTorch, and how it runs a batch."""
    lines = []
    for name, record in deployment.artifacts.converted().items():
        parts = [] if (line := _fp32_against_ort(deployment, name, record)) is None else [line]
        if record.parity is not None:
            parts.append(
                f"fp32 file vs PyTorch: max |logit diff| {record.parity.max_abs_diff:.2g} on "
                f"{record.parity.images} test images"
            )
        if record.batching is not None:
            parts.append(record.batching)
        if parts:
            lines.append(f"- {name} {record.version}: " + "; ".join(parts))
    return lines


def _fp32_against_ort(deployment: Deployment, runtime: str, record: ConvertedRecord) -> str | None:
    """A runtime's fp32 speed as a share of ONNX Runtime fp32's (both against eager in the same
    rounds) and, when it is slower, what the run itself shows of why: reference-kernel
    fallbacks, or none, which leaves the delegate's own fp32 kernels."""
    timed = {t.target: t.speedup for t in deployment.ok_targets() if t.speedup}
    ours, ort = timed.get(f"{runtime}:fp32"), timed.get(FP32_REFERENCE)
    if ours is None or ort is None:
        return None
    ratio = ours.median / ort.median
    line = f"fp32 at {ratio:.2f}x ONNX Runtime fp32's batch-1 speed (the same rounds)"
    if ratio >= SLOWER_THAN_ORT:
        return line
    cover = record.coverage.get(f"{runtime}_fp32")
    if cover is None:
        why = f"{runtime}'s own CPU kernels against ONNX Runtime's on this CPU"
    elif cover.fallback:
        why = (
            f"{cover.total_ops - cover.delegated_ops} ops run in reference kernels "
            f"({_fallen(cover)})"
        )
    else:
        why = (
            f"not from fallbacks (every op runs in {cover.delegate}): {runtime}'s "
            f"{cover.delegate} kernels against ONNX Runtime's on this CPU"
        )
    return f"{line}; slower: {why}"


def _data_lines(deployment: Deployment) -> list[str]:
    """Which images each figure came from, and the preprocessing every runtime was fed."""
    data = deployment.data
    if data is None:
        return []
    export, int8 = deployment.artifacts.export, deployment.artifacts.int8
    parity = (
        f"ONNX parity on {export.parity.images} images of {data.evaluation}"
        if export
        else "ONNX parity: not run (no ONNX model was built)"
    )
    gate = (
        f"int8 calibrated on {data.calibration} and gated on {int8.heldout_images} images of "
        f"{data.evaluation}"
        if int8
        else "int8 calibration and gate: not run (no int8 model was built)"
    )
    accuracy = (
        f"accuracy and agreement on held-out {data.evaluation}"
        if deployment.targets
        else "accuracy and agreement: not run (no runtime was timed)"
    )
    return [
        f"- Images: {parity}; {gate}; {accuracy}; preprocessing (mean "
        f"{[round(m, 4) for m in data.mean]}, std {[round(s, 4) for s in data.std]}, "
        f"{data.image_size} px) from {data.preprocessing_from}."
    ]
