"""Measure stage: every selected runtime on every artifact kind it runs, one process each.

A target is one runtime on one artifact kind; the kinds come from the runtime itself
(`Runtime.artifacts`: ORT CPU runs the fp32 ONNX, the int8 ONNX and the .ort file). The first
target, PyTorch eager fp32, is the reference every other is compared with (top-1 agreement and
max softmax difference on the same test images) and leads the demo table (the seed's Table 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnest_bench.harness.config import DeploySection
from resnest_bench.harness.data import Dataset
from resnest_bench.harness.results.deployment import ArtifactsRecord, Demo, Target
from resnest_bench.harness.runtimes import RUNTIMES, get_runtime, runtime_class

# How each artifact kind names its target: "<runtime>:<label>".
KIND_LABELS = {
    "state_dict": "fp32",
    "onnx_fp32": "fp32",
    "onnx_int8": "int8",
    "ort": "int8-ort-format",
    "openvino_fp32": "fp32",
    "openvino_int8": "int8",
}
REFERENCE = "torch-eager:fp32"
DEMO_INDEX = 0  # the test image whose per-class softmax the demo table shows


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
        TargetSpec(f"{name}:{KIND_LABELS[kind]}", name, kind)
        for name, cls in RUNTIMES.items()
        if name in chosen
        for kind in cls.artifacts
    ]


def measure_artifacts(
    directory: Path,
    artifacts: ArtifactsRecord,
    dataset: Dataset,
    section: DeploySection,
    *,
    small_subset: int,
    spawn: bool = True,
) -> tuple[list[Target], Demo]:
    """Measure every selected target on the files of `artifacts` in `directory`, each in a
    spawned process (spawn=False: in this one, for tests); returns them and the demo table."""
    # Here, not at the top: training imports measure.timing, and needs no ONNX Runtime.
    from resnest_bench.harness.build.onnx import check_input_fits
    from resnest_bench.harness.measure.target import Job, measure_target, spawned

    paths = {kind: directory / name for kind, name in artifacts.files.items()}
    for kind in ("onnx_fp32", "onnx_int8"):
        if kind in paths:
            check_input_fits(paths[kind], tuple(dataset.test.images.shape[1:]))
    targets: list[Target] = []
    logits: dict[str, np.ndarray] = {}
    for spec in select_targets(section.runtimes):
        reason = runtime_class(spec.runtime).unavailable_reason()
        if reason is None and spec.kind not in paths:
            reason = f"no {spec.kind} artifact was built"
        if reason is not None:
            targets.append(Target(**_names(spec), status="skipped", reason=reason))
            continue
        job = Job(
            **_names(spec),
            path=paths[spec.kind],
            test=dataset.test,
            mean=dataset.mean,
            std=dataset.std,
            section=section,
            small_subset=small_subset,
        )
        target, logits[spec.name] = spawned(job) if spawn else measure_target(job)
        targets.append(target)
    if logits:
        reference = logits[REFERENCE] if REFERENCE in logits else _reference_logits(paths, dataset)
        targets = [_with_agreement(t, logits.get(t.target), reference) for t in targets]
    return targets, demo(dataset, logits)


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
    from resnest_bench.harness.errors import BenchError
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
