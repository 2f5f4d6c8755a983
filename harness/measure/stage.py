"""Measure stage: every selected runtime on every artifact kind it runs, one process each,
all timed side by side in interleaved rounds (measure.interleaved) under one thread policy
(measure.threads); every ratio is per round, every row cross-checked (harness.host.load).

A target is one runtime on one artifact kind; the kinds come from the runtime itself
(`Runtime.artifacts`: ORT CPU runs the fp32 ONNX, the int8 ONNX and the .ort file). The first
target, PyTorch eager fp32, is the reference every other is compared with (top-1 agreement and
max softmax difference on the same test images) and leads the demo table (the seed's Table 4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from resnest_bench.harness.artifacts import ARTIFACTS
from resnest_bench.harness.config import DeploySection
from resnest_bench.harness.data import Dataset
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.host.cgroups import memory_room
from resnest_bench.harness.host.load import row_disagreement
from resnest_bench.harness.results.deployment import (
    ArtifactsRecord,
    Demo,
    HostCheck,
    Speedup,
    Target,
    ThreadPolicy,
    Throughput,
)
from resnest_bench.harness.results.stats import Stats
from resnest_bench.harness.rounds import speedups
from resnest_bench.harness.runtimes import RUNTIMES, get_runtime, runtime_class

if TYPE_CHECKING:
    import torch

    from resnest_bench.harness.measure.interleaved import Outcome, Session

# How each artifact kind names its target: "<runtime>:<label>".
REFERENCE = "torch-eager:fp32"
DEMO_INDEX = 0  # the test image whose per-class softmax the demo table shows
SMALL_SEED = 0  # which images of each class the small subset takes (harness.data.split)


@dataclass(frozen=True)
class TargetSpec:
    """What to measure: `runtime` on the artifact of `kind`, reported as `name`."""

    name: str
    runtime: str
    kind: str


def select_targets(runtimes: tuple[str, ...] | None) -> list[TargetSpec]:
    """Targets of the chosen runtimes (None: every registered one) in registry order;
    runtimes chosen by name must be available here (BenchError saying why not)."""
    for name in runtimes or ():
        get_runtime(name)  # unknown, or not available here and why
    chosen = list(RUNTIMES) if runtimes is None else runtimes
    return [
        TargetSpec(f"{cls.family or name}:{cls.precision or ARTIFACTS[kind].label}", name, kind)
        for name, cls in RUNTIMES.items()
        if name in chosen
        for kind in cls.artifacts
    ]


def measure_artifacts(
    directory: Path,
    artifacts: ArtifactsRecord,
    dataset: Dataset,
    section: DeploySection,
    policy: ThreadPolicy,
    *,
    small_subset: int,
    spawn: bool = True,
    step: Callable[[str, int, int], None] = lambda *_: None,
    device: str = "cpu",
) -> tuple[list[Target], Demo, HostCheck]:
    """Measure every selected target on the files of `artifacts` in `directory` side by side,
    each in its own spawned process kept for the whole run (spawn=False: in this one, for
    tests), all under `policy` (measure.threads.choose); returns them, the demo table and the
    host check.
    `device` is the suite's: PyTorch and the GPU runtimes run there, the rest on the CPU."""
    # Here, not at the top: the worker machinery loads only when something is measured.
    from resnest_bench.harness.measure.interleaved import run_session
    from resnest_bench.harness.measure.target import InProcess, Job, TargetProcess

    paths = {kind: directory / name for kind, name in artifacts.files.items()}
    _check_data_fits(paths, dataset)
    x_len = len(dataset.test)
    timed_n = x_len if section.timed_images is None else min(section.timed_images, x_len)
    small_n = min(small_subset, x_len)
    unmeasured: dict[str, Target] = {}
    handles = {}
    specs = select_targets(section.runtimes)
    try:
        for spec in specs:
            not_run = _not_run(spec, artifacts, paths)
            if not_run is not None:
                unmeasured[spec.name] = not_run
                continue
            job = Job(
                **_names(spec),
                path=paths[spec.kind],
                test=dataset.test,
                mean=dataset.mean,
                std=dataset.std,
                policy=policy,
                warmup=section.timing.warmup,
                device=device,
            )
            handles[spec.name] = TargetProcess(job) if spawn else InProcess(job)
        session = run_session(
            handles,
            section,
            timed_images=max(timed_n, small_n),
            step=step,
            room=memory_room if spawn else lambda: None,
        )
    finally:
        for handle in handles.values():
            handle.close()
    ratios = session_speedups(session)
    labels = dataset.test.labels.numpy()
    small = small_indices(dataset.test.labels, small_n)
    targets = []
    for spec in specs:
        if spec.name in unmeasured:
            targets.append(unmeasured[spec.name])
            continue
        outcome = session.outcomes[spec.name]
        targets.append(_target(spec, outcome, ratios.get(spec.name), labels, timed_n, small))
    logits = {
        name: o.logits
        for name, o in session.outcomes.items()
        if o.failure is None and o.logits is not None
    }
    if logits:
        targets = _agreeing(targets, logits, REFERENCE in session.outcomes, paths, dataset)
    return targets, demo(dataset, logits), host_check(session, targets)


def _check_data_fits(paths: dict[str, Path], dataset: Dataset) -> None:
    """Data that does not fit the model is bad input: the run stops here, on the first ONNX
    file that loads (a missing or corrupt one fails its own targets, not the run)."""
    from resnest_bench.harness.export.onnx import check_input_fits, load_onnx

    for kind in ("onnx_fp32", "onnx_int8"):
        if kind not in paths:
            continue
        try:
            load_onnx(paths[kind])
        except BenchError:
            continue
        check_input_fits(paths[kind], tuple(dataset.test.images.shape[1:]))
        return


def _not_run(spec: TargetSpec, artifacts: ArtifactsRecord, paths: dict[str, Path]) -> Target | None:
    """The target's row when it is not timed: failed (its file's build failed) or skipped
    (its runtime is unavailable here, or its file was not built, with the reason)."""
    reason = runtime_class(spec.runtime).unavailable_reason()
    if reason is None and spec.kind in artifacts.failed:
        return Target(**_names(spec), status="failed", reason=artifacts.failed[spec.kind])
    if reason is None and spec.kind not in paths:
        reason = artifacts.skipped.get(spec.kind, f"no {spec.kind} artifact was built")
    if reason is not None:
        return Target(**_names(spec), status="skipped", reason=reason)
    return None


def _agreeing(
    targets: list[Target],
    logits: dict[str, np.ndarray],
    reference_ran: bool,
    paths: dict[str, Path],
    dataset: Dataset,
) -> list[Target]:
    """Every target with its agreement against eager's logits: the timed reference's, or
    eager run here once when the reference was not among the targets."""
    reference = logits.get(REFERENCE)
    if reference is None and not reference_ran:
        reference = _reference_logits(paths, dataset)
    if reference is None:
        return targets
    return [_with_agreement(t, logits.get(t.target), reference) for t in targets]


def session_speedups(session: Session) -> dict[str, Speedup]:
    """Every target's ratio, taken in the memory group it was timed in against that group's
    reference (the same one in every group: it is timed again beside each)."""
    ratios: dict[str, Speedup] = {}
    for rounds in reversed(session.group_rounds):  # the first group's reference entry wins
        ok = {n: per for n, per in rounds.items() if session.outcomes[n].failure is None}
        ratios |= round_speedups(ok)
    return ratios


def round_speedups(rounds: dict[str, list[list[float]]]) -> dict[str, Speedup]:
    """Per-round ratios vs the reference over the rounds where it has samples: PyTorch eager
    fp32, or, when eager failed, the first target that has rounds (Speedup.against says which;
    the report names it)."""
    timed = [name for name, per in rounds.items() if any(per)]
    reference = REFERENCE if REFERENCE in timed else (timed[0] if timed else None)
    if reference is None:
        return {}
    kept = [r for r, times in enumerate(rounds[reference]) if times]
    aligned = {name: [per[r] for r in kept if r < len(per)] for name, per in rounds.items()}
    return {
        name: Speedup(**ratio.model_dump(), against=reference)
        for name, ratio in speedups(aligned, reference).items()
    }


def _target(
    spec: TargetSpec,
    outcome: Outcome,
    speedup: Speedup | None,
    labels: np.ndarray,
    timed_n: int,
    small: np.ndarray,
) -> Target:
    """The Target record of one outcome: failed with its reason, or every figure. `small`:
    the class-balanced small subset's indices (its time per image is the first len(small)
    images': a batch-1 call's time does not depend on which image it is)."""
    from resnest_bench.harness.export.gate import top1_percent

    if outcome.failure is not None:
        return Target(**_names(spec), status="failed", reason=outcome.failure)
    logits, per_image = outcome.logits, outcome.per_image_s
    latency = Stats.from_samples([s for r in outcome.rounds for s in r]).scaled(1e3)
    throughput = {
        str(b): Throughput(images_per_s=b / stats.median, batch_ms=stats.scaled(1e3))
        for b, stats in outcome.throughput.items()
    }
    avg_ms = float(np.mean(per_image[:timed_n]) * 1e3)
    device = outcome.load["device"]
    return Target(
        **_names(spec),
        status="ok",
        threads=outcome.load["threads"],
        batching=runtime_class(spec.runtime).batching,
        device=device,
        speedup=speedup,
        flag=row_disagreement(latency.median, avg_ms),
        load_s=outcome.load["load_s"],
        first_inference_s=outcome.load["first_inference_s"],
        latency_ms=latency,
        throughput=throughput,
        throughput_limit=outcome.throughput_limit,
        images_timed=timed_n,
        avg_ms_per_image=avg_ms,
        avg_ms_per_image_small=float(np.mean(per_image[: len(small)]) * 1e3),
        top1_full=top1_percent(logits, labels),
        top1_small=top1_percent(logits[small], labels[small]),
        images_full=len(labels),
        images_small=len(small),
        rss_before_load_bytes=outcome.load["rss_before_load_bytes"],
        peak_rss_bytes=outcome.peak_rss,
    )


def small_indices(labels: torch.Tensor, size: int) -> np.ndarray:
    """The small subset: `size` test images, classes taking turns (seed 0), in test order.
    Not the first N: a folder's test images come sorted by class."""
    from resnest_bench.harness.data.split import balanced_order

    return np.sort(balanced_order(labels, SMALL_SEED)[:size].numpy())


def host_check(session: Session, targets: list[Target]) -> HostCheck:
    """Busy host or a flagged row -> not trustworthy, with every reason in one line each."""
    overall = session.overall
    busy_rounds = [r for r, load in enumerate(session.round_loads) if load.busy]
    busy = (overall.busy or bool(busy_rounds)) if overall.busy is not None else None
    reasons = []
    if overall.busy:
        reasons.append(f"host busy while timing: {overall.reason}")
    elif busy_rounds:
        shown = ", ".join(str(r + 1) for r in busy_rounds)
        first = session.round_loads[busy_rounds[0]].reason
        reasons.append(f"host busy in round(s) {shown}: {first}")
    reasons += [f"{t.target}: figures disagree: {t.flag}" for t in targets if t.flag]
    return HostCheck(
        overall=overall,
        rounds=session.round_loads,
        busy=busy,
        trustworthy=not reasons if busy is not None else None,
        reasons=reasons,
        groups=[list(rounds) for rounds in session.group_rounds],
    )


def demo(dataset: Dataset, logits: dict[str, np.ndarray]) -> Demo:
    """The seed's Table 4: softmax over classes of test image DEMO_INDEX, per target."""
    return Demo(
        index=DEMO_INDEX,
        label=dataset.classes[int(dataset.test.labels[DEMO_INDEX])],
        classes=list(dataset.classes),
        probs={
            name: _softmax(out[DEMO_INDEX : DEMO_INDEX + 1])[0].tolist()
            for name, out in logits.items()
        },
    )


def _names(spec: TargetSpec) -> dict[str, str]:
    return {"target": spec.name, "runtime": spec.runtime, "artifact": spec.kind}


def _with_agreement(target: Target, logits: np.ndarray | None, reference: np.ndarray) -> Target:
    if logits is None:
        return target
    ref_p, p = _softmax(reference), _softmax(logits)
    return target.model_copy(
        update={
            "agreement_top1_pct": float(np.mean(ref_p.argmax(1) == p.argmax(1)) * 100.0),
            "max_prob_diff": float(np.max(np.abs(ref_p - p))),
        }
    )


def _reference_logits(paths: dict[str, Path], dataset: Dataset) -> np.ndarray:
    """PyTorch eager fp32 logits, when the torch-eager target itself was not measured."""
    import torch

    from resnest_bench.harness.checkpoints import load_torch_artifact
    from resnest_bench.harness.data import normalize
    from resnest_bench.harness.measure.target import EVAL_BATCH

    if "state_dict" not in paths:
        raise BenchError("agreement needs the PyTorch state_dict artifact as the reference")
    model = load_torch_artifact(paths["state_dict"])
    x = normalize(dataset.test.images, dataset.mean, dataset.std)
    with torch.inference_mode():
        return torch.cat([model(c) for c in torch.split(x, EVAL_BATCH)]).numpy()


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)
