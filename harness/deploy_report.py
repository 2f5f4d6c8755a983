"""Markdown for a Deployment: the seed's Tables 4 and 5, extended with latency percentiles,
throughput, memory, sizes and the int8 story.
"""

from __future__ import annotations

from resnest_bench.harness import markdown as md
from resnest_bench.harness.results.deployment import Deployment, Int8Record, Target

TARGET_HEAD = [
    "target",
    "load s",
    "first inference ms",
    "avg ms/image (test set)",
    "batch-1 latency ms",
    "speed-up vs eager",
    "best throughput img/s",
    "top-1 full",
    "top-1 small",
    "agreement vs eager",
    "peak RSS MiB",
    "artifact MiB",
]


def _reference_latency(deployment: Deployment) -> float | None:
    first = deployment.targets[0] if deployment.targets else None
    if first and first.ok and first.latency_ms:
        return first.latency_ms.median
    return None


def _best_throughput(target: Target) -> str:
    if not target.throughput:
        return md.MISSING
    batch, best = max(target.throughput.items(), key=lambda kv: kv[1].images_per_s)
    return f"{best.images_per_s:.1f} (b{batch})"


def target_rows(deployment: Deployment) -> list[list[str]]:
    """One row per target in TARGET_HEAD order; skipped targets say why."""
    sizes = deployment.artifacts.sizes_bytes
    reference = _reference_latency(deployment)
    rows = []
    for t in deployment.targets:
        if not t.ok:
            rows.append([t.target, f"skipped: {t.reason}"] + [md.MISSING] * 10)
            continue
        latency = t.latency_ms
        first_ms = t.first_inference_s * 1e3 if t.first_inference_s is not None else None
        rows.append(
            [
                t.target,
                md.num(t.load_s),
                md.num(first_ms),
                f"{md.num(t.avg_ms_per_image)} (n={t.images_timed})",
                md.stats(latency),
                f"{reference / latency.median:.2f}x" if reference and latency else md.MISSING,
                _best_throughput(t),
                f"{md.num(t.top1_full, 4)}% (n={t.images_full})",
                f"{md.num(t.top1_small, 4)}% (n={t.images_small})",
                f"{md.num(t.agreement_top1_pct, 4)}%, max dp {md.num(t.max_prob_diff, 2)}",
                md.mib(t.peak_rss_bytes),
                md.mib(sizes.get(t.artifact)),  # targets name their artifact kind
            ]
        )
    return rows


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
        [str(rank + 1), demo.classes[i], *[f"{demo.probs[n][i]:.6g}" for n in names]]
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


def _int8_verdict(int8: Int8Record) -> str:
    if int8.within_limit:
        return "within the limit"
    if int8.allowed_loss:
        return "OUTSIDE the limit, shipped because --allow-int8-loss was given"
    return "REJECTED: outside the limit (the run exits 3; --allow-int8-loss ships it)"


def _int8_line(int8: Int8Record | None) -> str:
    if int8 is None:
        return "int8: not built"
    settings = int8.settings
    tried = "; ".join(
        f"{a.variant}: top-1 {md.num(a.top1, 4)}% (drop {md.num(a.drop_pts, 3)} pts, "
        f"{a.excluded_nodes} nodes kept fp32{', accepted' if a.accepted else ''})"
        for a in int8.attempts
    )
    return (
        f"int8 ({settings.method}, {settings.quant_format}, per-channel "
        f"{settings.per_channel}, {settings.calibration} calibration on "
        f"{int8.calibration_images} training images; schemes for this CPU: "
        f"{', '.join(s.name for s in settings.schemes) or '-'}, because "
        f"{settings.scheme_reason}): "
        f"variant `{int8.variant}`, fp32 top-1 {md.num(int8.fp32_top1, 4)}% vs int8 "
        f"{md.num(int8.int8_top1, 4)}% on {int8.heldout_images} held-out images (limit "
        f"{int8.max_drop_pts} pts: {_int8_verdict(int8)}). Tried: {tried}"
    )


def latency_series(deployment: Deployment) -> tuple[list[str], list[float], list, list]:
    """Labels, medians and (0, p99 - median) whiskers of batch-1 latency, for a plot."""
    measured = [t for t in deployment.ok_targets() if t.latency_ms]
    labels = [t.target for t in measured]
    medians = [t.latency_ms.median for t in measured]
    lows = [0.0 for _ in measured]
    highs = [t.latency_ms.p99 - t.latency_ms.median for t in measured]
    return labels, medians, lows, highs


def deployment_section(deployment: Deployment) -> str:
    env = deployment.environment
    quota, memory = env.cgroup.cpu_quota_cores, env.cgroup.memory_bytes
    return "\n".join(
        [
            "## Deployment",
            "",
            f"Threads per runtime: {env.threads} (usable CPUs {env.usable_cpus}; "
            f"cgroup CPU quota {quota if quota is not None else 'none'}, memory limit "
            f"{md.mib(memory) + ' MiB' if memory else 'none'}); each target measured in its own "
            "process after an untimed warm-up; latency = batch 1, median (p90, p99, cv, n).",
            "",
            "Table 5: runtime comparison (accuracy, per-image time, size)",
            "",
            md.table(TARGET_HEAD, target_rows(deployment)),
            "",
            "Throughput",
            "",
            throughput_table(deployment),
            "",
            demo_table(deployment),
            "",
            "Artifacts",
            "",
            artifacts_table(deployment),
            "",
            *(f"- {_int8_line(r)}" for r in deployment.artifacts.int8_records() or [None]),
        ]
    )
