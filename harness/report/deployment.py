"""Markdown for a Deployment: first the answer (trust verdict, one "what should I ship" table),
then the seed's Tables 4 and 5, extended with latency percentiles, throughput, memory, sizes
and the int8 story.
"""

from __future__ import annotations

from dataclasses import dataclass

from resnest_bench.harness.report import markdown as md
from resnest_bench.harness.report.provenance import (
    conversion_lines,
    crosscheck_lines,
    data_lines,
    fallen_ops,
    host_lines,
)
from resnest_bench.harness.report.verdict import best_throughput, int8_verdict, speedup_text
from resnest_bench.harness.results.deployment import Deployment, Int8Attempt, Int8Record, Target

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


ABBREVIATIONS = (
    "Abbreviations: ORT = ONNX Runtime; fp32 = 32-bit float; int8 = 8-bit integer weights and "
    "activations (static quantization, QDQ = quantize-dequantize nodes); eager = PyTorch eager "
    "mode, the reference; p50/p90/p99 = 50th/90th/99th percentile of per-call time; cv = "
    "coefficient of variation (std/mean); n = number of samples; RSS = resident set size "
    "(memory held by the process); MiB = 2^20 bytes; pts = percentage points; img/s = images "
    "per second; b8 = batch of 8; dp = softmax probability difference."
)
KEPT_SHOWN = 6  # layers kept fp32 named per int8 attempt; the rest counted


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
                best_throughput(t),
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
            fallen_ops(cover) or "none",
        ]
        for record in deployment.artifacts.converted().values()
        for kind, cover in record.coverage.items()
    ]
    if not rows:
        return ""
    head = ["artifact", "delegate", "ops delegated", "%", "not delegated (reference kernels)"]
    return "\n".join(["Delegate coverage", "", md.table(head, rows), ""])


def int8_line(int8: Int8Record | None) -> str:
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
        f"{int8.max_drop_pts} pts: {int8_verdict(int8)}). Tried, in order (only the chosen "
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
            *host_lines(deployment),
            "",
            *_measured_tables(deployment, label),
            "Artifacts",
            "",
            artifacts_table(deployment),
            "",
            coverage_table(deployment),
            *conversion_lines(deployment),
            *crosscheck_lines(deployment),
            *(f"- {int8_line(r)}" for r in deployment.artifacts.int8_records() or [None]),
            *data_lines(deployment),
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
