"""Where a deployment's figures came from and how far to trust them: the host's load and the
thread policy, each target against its independent peer (cross-check), each runtime's fp32
file against ONNX Runtime's, and which images each figure used."""

from __future__ import annotations

from resnest_bench.harness.report import markdown as md
from resnest_bench.harness.report.verdict import SLOWER_THAN_ORT
from resnest_bench.harness.results.deployment import ConvertedRecord, DelegateCoverage, Deployment


def host_lines(deployment: Deployment) -> list[str]:
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


def conversion_lines(deployment: Deployment) -> list[str]:
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
            f"({fallen_ops(cover)})"
        )
    else:
        why = (
            f"not from fallbacks (every op runs in {cover.delegate}): {runtime}'s "
            f"{cover.delegate} kernels against ONNX Runtime's on this CPU"
        )
    return f"{line}; slower: {why}"


def data_lines(deployment: Deployment) -> list[str]:
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


FP32_REFERENCE = "ort-cpu:fp32"  # what each runtime's own fp32 file is held against


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


def fallen_ops(cover: DelegateCoverage) -> str:
    """What a delegate left to reference kernels, by op name with counts ("" when nothing)."""
    return ", ".join(f"{op} x{n}" for op, n in sorted(cover.fallback.items()))
