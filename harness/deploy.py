"""One deployment run: build every artifact of a trained model, then measure each runtime on it.

    result = run_deploy(model, dataset, out_dir, DeployConfig())
    result.to_dict()      # JSON-able, keys documented on DeployResult / TargetResult
    harness.deploy_report.deployment_section(result.to_dict())  # the seed's Tables 4 and 5

A "target" is one runtime on one artifact (ORT CPU runs the fp32 ONNX, the int8 ONNX and the
.ort file). Each target is measured in its own freshly spawned process, so its cold start
(imports already done, nothing cached) and peak RSS are its own. Inside that process, in order:
load (timed), first inference (timed apart), batch-1 latency (MLPerf SingleStream style through
harness.timing.measure), throughput at larger batches, then one pass over the test set, batch 1
and timed per image for the first `timed_images` images (the seed's "average time per image"),
untimed batches for the rest, giving top-1 on the full and the small set. Agreement with PyTorch
fp32 and the per-class softmax of one image (the seed's Table 4) are computed from its logits.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from resnest_bench.harness.atomic import staged_dir
from resnest_bench.harness.data import Dataset, ImageSet, normalize
from resnest_bench.harness.envinfo import cgroup_limits, peak_rss_bytes, usable_cpus
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.export import (
    check_input_fits,
    convert_to_ort,
    export_onnx,
    load_torch_artifact,
    save_torch_artifact,
)
from resnest_bench.harness.quantize import QuantSettings, quantize_int8, top1_percent
from resnest_bench.harness.runtimes import RUNTIMES, Runtime, get_runtime, runtime_class
from resnest_bench.harness.runtimes.ort import OrtRuntime
from resnest_bench.harness.timing import SampleStats, TimingPolicy, measure

ARTIFACT_FILES = {
    "state_dict": "model.pt",
    "onnx_fp32": "model.onnx",
    "onnx_int8": "model.int8.onnx",
    "ort": "model.int8.ort",
}
# (target label, runtime, artifact); the first is the reference the others are compared with.
TARGETS: tuple[tuple[str, str, str], ...] = (
    ("torch-eager:fp32", "torch-eager", "state_dict"),
    ("torch-compile:fp32", "torch-compile", "state_dict"),
    ("ort-cpu:fp32", "ort-cpu", "onnx_fp32"),
    ("ort-cpu:int8", "ort-cpu", "onnx_int8"),
    ("ort-cpu:int8-ort-format", "ort-cpu", "ort"),
    ("ort-cuda:fp32", "ort-cuda", "onnx_fp32"),
    ("ort-tensorrt:fp32", "ort-tensorrt", "onnx_fp32"),
)
REFERENCE = TARGETS[0][0]


@dataclass(frozen=True)
class DeployConfig:
    """What to build and measure. `runtimes` None means every registered runtime, and the ones
    this machine lacks are reported as skipped; runtimes named explicitly must be available.
    `timed_images` None times every test image one by one (as the seed did; slow for big
    models); `small_set` is the first N test images (the seed's 50-image set).
    """

    runtimes: tuple[str, ...] | None = None
    threads: int | None = None
    policy: TimingPolicy = field(default_factory=TimingPolicy)
    throughput_batches: tuple[int, ...] = (8, 16, 32)
    timed_images: int | None = None
    small_set: int = 50
    eval_batch: int = 32
    exporter: str = "auto"
    parity_images: int = 256
    parity_atol: float = 1e-3
    parity_rtol: float = 1e-5
    parity_min_agreement: float = 0.99
    int8: QuantSettings = field(default_factory=QuantSettings)
    int8_heldout_images: int | None = 1000
    max_int8_drop_pts: float = 1.0
    int8_strict: bool = False  # True: no int8 within the limit ends the run (else ships flagged)
    ort_optimization: str = "all"
    ort_format_optimization: str = "extended"
    demo_index: int = 0
    isolate: bool = True

    def __post_init__(self) -> None:
        if any(b < 1 for b in self.throughput_batches) or self.eval_batch < 1:
            raise BenchError("deploy batch sizes must be >= 1")
        if self.small_set < 1 or (self.timed_images is not None and self.timed_images < 1):
            raise BenchError("deploy small_set and timed_images must be >= 1 (or None)")
        if self.runtimes is not None:
            for name in self.runtimes:
                runtime_class(name)  # unknown name -> BenchError listing the known ones

    def to_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["int8"] = self.int8.to_dict()
        return out


@dataclass(frozen=True)
class Artifacts:
    """Deployable files of one model (any may be None when not built); paths are absolute."""

    state_dict: Path | None = None
    onnx_fp32: Path | None = None
    onnx_int8: Path | None = None
    ort: Path | None = None
    build: dict[str, object] = field(default_factory=dict)  # export/int8/ort/pt2e records

    def path(self, kind: str) -> Path | None:
        return getattr(self, kind)

    def sizes(self) -> dict[str, int | None]:
        """Bytes on disk per artifact kind (state_dict, onnx_fp32, onnx_int8, ort)."""
        return {k: (p.stat().st_size if (p := self.path(k)) else None) for k in ARTIFACT_FILES}

    def relocated(self, directory: Path) -> Artifacts:
        """The same artifacts under another directory (after a staged dir is published)."""
        moved = {k: directory / p.name if (p := self.path(k)) else None for k in ARTIFACT_FILES}
        return dataclasses.replace(self, **moved)


@dataclass(frozen=True)
class TargetResult:
    """Measurements of one target. Times in seconds unless the key says ms.

    to_dict() keys: target, runtime, artifact, status ("ok" | "skipped"), reason (why skipped),
    threads, load_s, first_inference_s, latency_ms {n, mean, median, p90, p99, min, max, std,
    cv} (batch 1), throughput {"<batch>": {images_per_s, batch_ms {...}}}, images_timed,
    avg_ms_per_image (batch 1 over the timed test images), avg_ms_per_image_small,
    top1_full, top1_small (percent), images_full, images_small, agreement_top1_pct and
    max_prob_diff (against PyTorch eager fp32), rss_before_load_bytes, peak_rss_bytes.
    Fields of a skipped target are None.
    """

    target: str
    runtime: str
    artifact: str
    status: str
    reason: str | None = None
    threads: int | None = None
    load_s: float | None = None
    first_inference_s: float | None = None
    latency: SampleStats | None = None
    throughput: dict[int, SampleStats] | None = None
    images_timed: int | None = None
    avg_ms_per_image: float | None = None
    avg_ms_per_image_small: float | None = None
    top1_full: float | None = None
    top1_small: float | None = None
    images_full: int | None = None
    images_small: int | None = None
    agreement_top1_pct: float | None = None
    max_prob_diff: float | None = None
    rss_before_load_bytes: int | None = None
    peak_rss_bytes: int | None = None
    logits: np.ndarray | None = field(default=None, repr=False)  # not in to_dict()

    def to_dict(self) -> dict[str, object]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del out["logits"], out["latency"]
        out["latency_ms"] = self.latency.scaled(1e3).to_dict() if self.latency else None
        out["throughput"] = (
            {
                str(batch): {
                    "images_per_s": batch / stats.median,
                    "batch_ms": stats.scaled(1e3).to_dict(),
                }
                for batch, stats in self.throughput.items()
            }
            if self.throughput
            else None
        )
        return out


@dataclass(frozen=True)
class DeployResult:
    """A whole deployment run.

    to_dict() keys: config {DeployConfig fields}, environment {usable_cpus, cgroup
    {cpu_quota_cores, memory_bytes, version}, torch, onnxruntime, providers}, artifacts
    {files {kind: file name}, sizes_bytes {state_dict, onnx_fp32, onnx_int8, ort},
    int8_vs_state_dict (size ratio), export {...}, int8 {...}, ort {...}, pt2e {status, reason}},
    targets [TargetResult.to_dict()], demo {index, label, classes, probs {target: [per class]}}.
    """

    config: DeployConfig
    environment: dict[str, object]
    artifacts: Artifacts
    targets: tuple[TargetResult, ...]
    demo_index: int
    demo_label: int
    classes: tuple[str, ...]

    def demo_probs(self) -> dict[str, list[float]]:
        """Softmax over classes of the demo image, per measured target (the seed's Table 4)."""
        return {
            t.target: _softmax(t.logits[self.demo_index : self.demo_index + 1])[0].tolist()
            for t in self.targets
            if t.logits is not None
        }

    def to_dict(self) -> dict[str, object]:
        sizes = self.artifacts.sizes()
        ratio = (
            sizes["onnx_int8"] / sizes["state_dict"]
            if sizes["onnx_int8"] and sizes["state_dict"]
            else None
        )
        return {
            "config": self.config.to_dict(),
            "environment": self.environment,
            "artifacts": {
                "files": {k: p.name for k in ARTIFACT_FILES if (p := self.artifacts.path(k))},
                "sizes_bytes": sizes,
                "int8_vs_state_dict": ratio,
                **self.artifacts.build,
            },
            "targets": [t.to_dict() for t in self.targets],
            "demo": {
                "index": self.demo_index,
                "label": self.classes[self.demo_label],
                "classes": list(self.classes),
                "probs": self.demo_probs(),
            },
        }


# ---------------------------------------------------------------------------------------------
# Building artifacts.


def build_artifacts(
    model: nn.Module, dataset: Dataset, out_dir: Path, config: DeployConfig
) -> Artifacts:
    """Write state_dict, ONNX fp32 (parity-checked), ONNX int8 (accuracy-checked) and .ort."""
    out_dir.mkdir(parents=True, exist_ok=True)
    test_x = normalize(dataset.test.images[: config.parity_images], dataset.mean, dataset.std)
    paths = {k: out_dir / name for k, name in ARTIFACT_FILES.items()}
    save_torch_artifact(model, paths["state_dict"])
    exported = export_onnx(
        model,
        paths["onnx_fp32"],
        test_x,
        exporter=config.exporter,  # type: ignore[arg-type]
        atol=config.parity_atol,
        rtol=config.parity_rtol,
        min_agreement=config.parity_min_agreement,
        threads=config.threads,
    )
    heldout = _head(dataset.test, config.int8_heldout_images)
    int8 = quantize_int8(
        paths["onnx_fp32"],
        paths["onnx_int8"],
        calibration=dataset.train,
        heldout=heldout,
        mean=dataset.mean,
        std=dataset.std,
        max_drop_pts=config.max_int8_drop_pts,
        strict=config.int8_strict,
        settings=config.int8,
        threads=config.threads,
    )
    ort_file = convert_to_ort(
        paths["onnx_int8"], paths["ort"], optimization=config.ort_format_optimization
    )
    build = {
        "export": _relative(exported.to_dict()),
        "int8": _relative(int8.to_dict()),
        "ort": _relative(ort_file.to_dict()),
        "pt2e": pt2e_status(),
    }
    return Artifacts(**paths, build=build)


def pt2e_status() -> dict[str, object]:
    """PyTorch's own int8 path (torchao pt2e + X86InductorQuantizer): recorded, not built.

    With torchao 0.18 + torch 2.13, prepare/convert_pt2e and torch.export save/load work, but
    torch.compile(freezing) of the reloaded program fails in onednn.qconv_prepack, so the path
    is reported as skipped with its reason rather than measured.
    """
    import importlib.util

    if importlib.util.find_spec("torchao") is None:
        return {"status": "skipped", "reason": "torchao is not installed (pip install torchao)"}
    return {
        "status": "skipped",
        "reason": "torchao is installed, but this harness does not build the pt2e int8 model yet",
    }


# ---------------------------------------------------------------------------------------------
# Measuring.


@dataclass(frozen=True)
class _Job:
    """Everything a spawned measurement process needs (picklable)."""

    target: str
    runtime: str
    artifact: str
    path: str
    test: ImageSet
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    config: DeployConfig


def measure_artifacts(artifacts: Artifacts, dataset: Dataset, config: DeployConfig) -> list:
    """Measure every selected target on `artifacts`; reference (PyTorch eager fp32) first."""
    image_shape = tuple(dataset.test.images.shape[1:])
    for kind in ("onnx_fp32", "onnx_int8"):
        if (path := artifacts.path(kind)) is not None:
            check_input_fits(path, image_shape)  # type: ignore[arg-type]
    results: list[TargetResult] = []
    for target, runtime, kind in select_targets(config, artifacts):
        reason = runtime_class(runtime).unavailable_reason()
        path = artifacts.path(kind)
        if reason is None and path is None:
            reason = f"no {kind} artifact was built"
        if reason is not None:
            results.append(TargetResult(target, runtime, kind, "skipped", reason))
            continue
        job = _Job(
            target, runtime, kind, str(path), dataset.test, dataset.mean, dataset.std, config
        )
        results.append(_spawned(job) if config.isolate else measure_target(job))
    reference = next((r.logits for r in results if r.target == REFERENCE), None)
    if reference is None:
        reference = _reference_logits(artifacts, dataset, config)
    return [_with_agreement(r, reference) for r in results]


def select_targets(config: DeployConfig, artifacts: Artifacts) -> list[tuple[str, str, str]]:
    """Targets of the chosen runtimes; explicitly chosen runtimes must be available here."""
    if config.runtimes is None:
        chosen = list(RUNTIMES)
    else:
        chosen = list(config.runtimes)
        for name in chosen:
            get_runtime(name)  # raises BenchError: unknown, or not available and why
    return [t for t in TARGETS if t[1] in chosen]


def measure_target(job: _Job) -> TargetResult:
    """Measure one target in this process (the body of each spawned measurement process)."""
    import psutil

    cfg = job.config
    x = normalize(job.test.images, job.mean, job.std).numpy()
    labels = job.test.labels.numpy()
    runtime = _make_runtime(job.runtime, cfg)
    rss_before = psutil.Process().memory_info().rss

    start = time.perf_counter()
    runtime.load(job.path)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    runtime.run(x[:1])
    first_s = time.perf_counter() - start

    singles = itertools.cycle([x[i : i + 1] for i in range(len(x))])
    latency = measure(lambda: runtime.run(next(singles)), cfg.policy)
    throughput = {}
    for batch in cfg.throughput_batches:
        chunks = itertools.cycle(_batches(x, batch, whole=True))
        throughput[batch] = measure(lambda chunks=chunks: runtime.run(next(chunks)), cfg.policy)

    timed_n = len(x) if cfg.timed_images is None else min(cfg.timed_images, len(x))
    small_n = min(cfg.small_set, len(x))
    times, outputs = [], []
    for i in range(max(timed_n, small_n)):
        start = time.perf_counter()
        outputs.append(runtime.run(x[i : i + 1]))
        times.append(time.perf_counter() - start)
    rest = x[len(outputs) :]
    outputs += [runtime.run(chunk) for chunk in _batches(rest, cfg.eval_batch, whole=False)]
    logits = np.concatenate(outputs).astype(np.float32)
    return TargetResult(
        target=job.target,
        runtime=job.runtime,
        artifact=job.artifact,
        status="ok",
        threads=runtime.threads,
        load_s=load_s,
        first_inference_s=first_s,
        latency=latency,
        throughput=throughput,
        images_timed=timed_n,
        avg_ms_per_image=float(np.mean(times[:timed_n]) * 1e3),
        avg_ms_per_image_small=float(np.mean(times[:small_n]) * 1e3),
        top1_full=top1_percent(logits, labels),
        top1_small=top1_percent(logits[:small_n], labels[:small_n]),
        images_full=len(labels),
        images_small=small_n,
        rss_before_load_bytes=rss_before,
        peak_rss_bytes=_own_peak_rss(),
        logits=logits,
    )


def run_deploy(
    model: nn.Module,
    dataset: Dataset,
    out_dir: str | Path,
    config: DeployConfig | None = None,
    *,
    measure: bool = True,
) -> DeployResult:
    """Build artifacts into `out_dir` (published only if everything succeeds) and measure them;
    measure=False builds and checks the artifacts only (the `export` command)."""
    config = config or DeployConfig()
    if not 0 <= config.demo_index < len(dataset.test):
        raise BenchError(f"demo_index {config.demo_index} is outside the test set")
    select_targets(config, Artifacts())  # fail on unavailable runtimes before the slow part
    final = Path(out_dir)
    with staged_dir(final) as stage:
        artifacts = build_artifacts(model, dataset, stage, config)
        targets = measure_artifacts(artifacts, dataset, config) if measure else []
    return DeployResult(
        config=config,
        environment=environment(config),
        artifacts=artifacts.relocated(final),
        targets=tuple(targets),
        demo_index=config.demo_index,
        demo_label=int(dataset.test.labels[config.demo_index]),
        classes=dataset.classes,
    )


def environment(config: DeployConfig) -> dict[str, object]:
    """Threads and limits in force: the context every number above depends on."""
    import onnxruntime

    limits = cgroup_limits()
    return {
        "usable_cpus": usable_cpus(limits),
        "threads": config.threads if config.threads is not None else usable_cpus(limits),
        "cgroup": limits.model_dump(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "providers": onnxruntime.get_available_providers(),
    }


# ---------------------------------------------------------------------------------------------


def _spawned(job: _Job) -> TargetResult:
    """measure_target in a fresh interpreter (spawn: no inherited threads, caches or memory)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure_target, job).result()


def _own_peak_rss() -> int:
    """Peak RSS of this process image. Linux's ru_maxrss (envinfo.peak_rss_bytes) carries the
    parent's peak across fork+exec, so a spawned child reads VmHWM, which exec resets."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss_bytes()


def _make_runtime(name: str, config: DeployConfig) -> Runtime:
    cls = runtime_class(name)
    if issubclass(cls, OrtRuntime):
        get_runtime(name)  # availability check with its one-line reason
        return cls(threads=config.threads, optimization=config.ort_optimization)
    return get_runtime(name, threads=config.threads)


def _with_agreement(result: TargetResult, reference: np.ndarray) -> TargetResult:
    if result.logits is None:
        return result
    ref_p, p = _softmax(reference), _softmax(result.logits)
    return dataclasses.replace(
        result,
        agreement_top1_pct=float(np.mean(ref_p.argmax(1) == p.argmax(1)) * 100.0),
        max_prob_diff=float(np.max(np.abs(ref_p - p))),
    )


def _reference_logits(artifacts: Artifacts, dataset: Dataset, config: DeployConfig) -> np.ndarray:
    """PyTorch eager fp32 logits, when the torch-eager target itself was not measured."""
    if artifacts.state_dict is None:
        raise BenchError("agreement needs the PyTorch state_dict artifact as the reference")
    model = load_torch_artifact(artifacts.state_dict)
    x = normalize(dataset.test.images, dataset.mean, dataset.std)
    with torch.inference_mode():
        return torch.cat([model(c) for c in torch.split(x, config.eval_batch)]).numpy()


def _batches(x: np.ndarray, size: int, *, whole: bool) -> list[np.ndarray]:
    """Consecutive slices of `size`; whole=True drops a short tail (and repeats x if too few)."""
    if whole and len(x) < size:
        x = np.concatenate([x] * (size // len(x) + 1))
    stop = len(x) - len(x) % size if whole else len(x)
    return [x[i : i + size] for i in range(0, stop, size)]


def _head(images: ImageSet, n: int | None) -> ImageSet:
    return images if n is None or n >= len(images) else images.subset(torch.arange(n))


def _relative(record: dict[str, object]) -> dict[str, object]:
    """Artifact records name files, not absolute staging paths."""
    return {k: Path(v).name if k in ("path", "source") else v for k, v in record.items()}


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)
