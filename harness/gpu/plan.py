"""`resnest-bench plan`: what a suite would do on this GPU, or on a named one, before it runs.

A plan resolves the suite against a GPU (the one present, via torch or nvidia-smi/NVML, or one
named from gpu.catalog): the image that serves it, the precision `auto` picks and why, cuDNN,
compile, batch sizes, every deploy target with run/skip and its reason (each runtime's rule),
and the training time estimated with the MFU it assumes. Nothing is trained, built or timed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from resnest_bench.harness.config import Suite, TrainSection
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.gpu import catalog as gpus
from resnest_bench.harness.gpu import estimate
from resnest_bench.harness.report import markdown as md
from resnest_bench.harness.runtimes.base import Machine

if TYPE_CHECKING:
    from resnest_bench.models.profile import StepWork

# Training images per data set when the suite takes no subset (synthetic: its default size).
DATASET_TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "synthetic": 2048}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuPlan(_Model):
    name: str
    source: str  # "--gpu" (named), or how the present one was found
    compute_capability: str
    driver: str | None
    memory_gib: int | None
    memory_gbps: float  # 0: not on record
    peak_flops: dict[str, float]
    mig: str | None = None  # MIG profile of a slice: its peaks are its share of the card's


class ImagePlan(_Model):
    service: str
    tag: str
    torch: str
    cuda: str
    onnxruntime: str
    command: str  # how to run it

    @classmethod
    def of(cls, image: gpus.Image, suite: str) -> ImagePlan:
        profile = f"--profile {image.profile} " if image.profile else ""
        return cls(
            service=image.service,
            tag=image.tag,
            torch=image.torch,
            cuda=image.cuda,
            onnxruntime=image.onnxruntime,
            command=f"docker compose {profile}run --rm {image.service} run {suite}",
        )


class EpochEstimate(_Model):
    """One model's epoch under harness.gpu.estimate's model, by term (seconds)."""

    seconds: float
    launch: float
    compute: float
    memory: float
    bound: str  # the largest term

    @classmethod
    def of(cls, cost: estimate.StepCost) -> EpochEstimate:
        return cls(
            seconds=cost.total,
            launch=cost.launch,
            compute=cost.compute,
            memory=cost.memory,
            bound=cost.bound,
        )


class StepPlan(_Model):
    """One training step (train or transfer) as it would run."""

    step: str
    models: list[str]
    dataset: str
    train_images: int | None
    epochs: int
    batch_size: int
    precision: str
    precision_reason: str
    channels_last: bool
    compile: bool
    compile_mode: str | None
    problem: str | None  # why it would stop (bf16 on Volta, compile without a compiler)
    flops_per_epoch: dict[str, float]  # per model, forward + backward, counted
    estimate_s: float | None
    epoch_estimates: dict[str, EpochEstimate]  # per model; empty without peak or bandwidth


class TargetPlan(_Model):
    runtime: str
    artifacts: list[str]
    run: bool
    reason: str | None


class Plan(_Model):
    suite: str
    quick: bool
    device: str
    gpu: GpuPlan | None
    image: ImagePlan | None
    image_problem: str | None
    cudnn: bool
    steps: list[StepPlan]
    throughput_batches: list[int]
    targets: list[TargetPlan]
    estimate_s: float | None
    estimate_assumption: str

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2)

    def to_markdown(self) -> str:
        gpu = self.gpu
        lines = [f"# Plan: {self.suite}{' (--quick)' if self.quick else ''}", ""]
        if gpu is None:
            lines.append(f"- Device: {self.device} (no GPU)")
        else:
            lines.append(
                f"- GPU: {gpu.name} (sm_{gpu.compute_capability.replace('.', '')}, "
                f"{gpu.memory_gib or '?'} GiB, {gpu.source}), driver "
                f"{gpu.driver or 'not given (assumed new enough; --driver X.Y)'}"
            )
            if gpu.mig:
                lines.append(
                    f"- MIG slice {gpu.mig}: peaks are its share of the full card's "
                    f"({gpus.MIG_SLICES} compute slices)"
                )
            if not gpu.peak_flops or not gpu.memory_gbps:
                lines.append(
                    "- Peak FLOP/s or memory bandwidth: unknown for this card (no MFU, no estimate)"
                )
        if self.image is not None:
            image = self.image
            lines.append(
                f"- Image: {image.service} `{image.tag}`: torch {image.torch}, CUDA {image.cuda}, "
                f"{image.onnxruntime}; run with `{image.command}`"
            )
        if self.image_problem:
            lines.append(f"- Image: NONE: {self.image_problem}")
        if gpu is not None:
            lines.append(
                f"- cuDNN: {'on' if self.cudnn else 'off (no cuDNN 9 kernels below sm_50)'}"
            )
        rows = [
            [
                s.step,
                ", ".join(s.models),
                f"{s.dataset} ({s.train_images or '?'} images)",
                str(s.epochs),
                str(s.batch_size),
                f"{s.precision} ({s.precision_reason})",
                f"{s.compile_mode}" if s.compile else "off",
                _estimate_cell(s),
                s.problem or "ok",
            ]
            for s in self.steps
        ]
        if rows:
            head = ["step", "models", "data", "epochs", "batch", "precision", "compile"]
            lines += ["", md.table([*head, "estimate", "check"], rows)]
        if self.targets:
            lines += [
                "",
                f"Deploy targets (throughput batches {self.throughput_batches}):",
                "",
                md.table(
                    ["runtime", "artifacts", "runs", "reason"],
                    [
                        [
                            t.runtime,
                            ", ".join(t.artifacts),
                            "run" if t.run else "skip",
                            t.reason or "",
                        ]
                        for t in self.targets
                    ],
                ),
            ]
        total = md.num(self.estimate_s / 3600) + " h" if self.estimate_s else "unknown"
        lines += ["", f"Estimated training time: {total} ({self.estimate_assumption})"]
        return "\n".join(lines) + "\n"


def _estimate_cell(step: StepPlan) -> str:
    if step.estimate_s is None:
        return md.MISSING
    epochs = "; ".join(
        f"{name} {md.num(e.seconds)} s/epoch ({e.bound}-bound: launch {md.num(e.launch)}, "
        f"compute {md.num(e.compute)}, memory {md.num(e.memory)})"
        for name, e in step.epoch_estimates.items()
    )
    return f"{md.num(step.estimate_s / 60)} min: {epochs}"


def _present_gpu(device: str) -> tuple[str, tuple[int, int], tuple[int, ...] | None, str] | None:
    """(name, capability, driver, source) of the GPU this suite's device names on this machine:
    torch when it sees it, else the launcher's nvidia-smi/NVML query; None when there is none."""
    if device == "cpu":
        return None
    from resnest_bench.harness.gpu import launcher

    index = int(device.partition(":")[2] or 0)
    try:
        host = launcher.query_gpus()
    except BenchError:
        host = []
    host_gpu = host[index] if index < len(host) else None
    driver = host_gpu.driver if host_gpu else None
    import torch

    if torch.cuda.is_available() and index < torch.cuda.device_count():
        major, minor = torch.cuda.get_device_capability(index)
        return torch.cuda.get_device_name(index), (major, minor), driver, "present (torch)"
    if host_gpu is not None:
        cc, source = host_gpu.compute_capability, f"present ({host_gpu.cc_source})"
        return host_gpu.name, cc, driver, source
    return None


def _gpu_plan(
    name: str, cc: tuple[int, int], driver: tuple[int, ...] | None, source: str
) -> GpuPlan:
    """The table's entry, or for a name it lacks the capability the driver reports (no
    peaks: MFU and the estimate stay unknown rather than borrowed from another card)."""
    spec = gpus.spec_for(name, cc, None)
    return GpuPlan(
        name=name,
        source=source,
        compute_capability=f"{cc[0]}.{cc[1]}",
        driver=gpus.format_driver(driver) if driver else None,
        memory_gib=spec.memory_gib or None,
        memory_gbps=spec.memory_gbps,
        peak_flops=dict(spec.peak_flops),
        mig=spec.mig,
    )


def _step_work(suite: Suite, name: str, num_classes: int, batch_size: int) -> StepWork:
    """One training step of `name` with the suite's model overrides, counted on meta."""
    section = suite.model
    overrides = {"stem": section.stem, "radix": section.radix, "cardinality": section.cardinality}
    given = tuple((k, v) for k, v in overrides.items() if v is not None)
    return estimate.step_work(name, num_classes, batch_size, given)


def _step(
    suite: Suite,
    step: str,
    section: TrainSection,
    dataset: str,
    names: list[str],
    machine: Machine,
    gpu: GpuPlan | None,
) -> StepPlan:
    """Train runs every model; transfer runs the better one, estimated as the dearer."""
    cc = machine.cc
    precision, reason = gpus.resolve_precision(section.precision, cc)
    problem = gpus.precision_problem(precision, cc)
    compiled, _ = gpus.resolve_compile(section.compile, cc, machine.missing_compilers)
    if problem is None and section.compile is True:
        problem = gpus.compile_problem(cc, machine.missing_compilers)
    images = suite.data.train_subset or DATASET_TRAIN_IMAGES.get(
        "synthetic" if suite.data.dataset == "synthetic" else dataset
    )
    classes = 100 if dataset == "cifar100" else 10
    works = {n: _step_work(suite, n, classes, section.batch_size) for n in names} if images else {}
    steps = estimate.steps_per_epoch(images, section.batch_size) if images else 0
    flops = {n: w.flops * steps for n, w in works.items()}
    mode = estimate.execution(compiled, section.compile_mode)
    costs = (
        {
            n: estimate.step_cost(
                w, gpu.peak_flops.get(precision), gpu.memory_gbps, precision, mode
            )
            for n, w in works.items()
        }
        if gpu
        else {}
    )
    epochs = {n: EpochEstimate.of(c.times(steps)) for n, c in costs.items() if c is not None}
    total = None
    if epochs and len(epochs) == len(works):
        # train runs every model; transfer runs the better one, estimated as the dearer
        per_epoch = [e.seconds for e in epochs.values()]
        total = section.epochs * (max(per_epoch) if step == "transfer" else sum(per_epoch))
    else:
        epochs = {}
    return StepPlan(
        step=step,
        models=names if step == "train" else [f"the better of {', '.join(names)}"],
        dataset=dataset,
        train_images=images,
        epochs=section.epochs,
        batch_size=section.batch_size,
        precision=precision,
        precision_reason=reason,
        channels_last=section.channels_last,
        compile=compiled,
        compile_mode=section.compile_mode if compiled else None,
        problem=problem,
        flops_per_epoch=flops,
        estimate_s=total,
        epoch_estimates=epochs,
    )


def _targets(suite: Suite, machine: Machine, present: bool) -> list[TargetPlan]:
    """Every deploy target with its runtime's own rule; on this machine, its real check too."""
    from resnest_bench.harness.runtimes import RUNTIMES

    out = []
    for name in suite.deploy.runtimes or tuple(RUNTIMES):
        cls = RUNTIMES[name]
        reason = cls.plan_skip_reason(machine)
        if reason is None and present:
            reason = cls.unavailable_reason()
        run = reason is None
        out.append(TargetPlan(runtime=name, artifacts=list(cls.artifacts), run=run, reason=reason))
    return out


def _parse_driver(driver: str | None) -> tuple[int, ...] | None:
    try:
        return gpus.parse_driver(driver) if driver is not None else None
    except ValueError as exc:
        raise BenchError(f"--driver: {exc}") from None


def make_plan(
    suite: Suite, *, quick: bool = False, gpu: str | None = None, driver: str | None = None
) -> Plan:
    """Resolve `suite` against the named GPU (`gpu`, from gpu.catalog) or the one present."""
    from resnest_bench.harness.gpu.accel import missing_compilers

    given_driver = _parse_driver(driver)
    present = gpu is None
    if present:
        found = _present_gpu(suite.device)
    else:
        spec = gpus.find_gpu(gpu)
        if spec is None:
            known = ", ".join(s.name for s in gpus.GPUS)
            raise BenchError(f"unknown GPU {gpu!r}; known: {known}")
        found = (spec.name if spec.mig is None else gpu, spec.compute_capability, None, "--gpu")
    gpu_plan, cc, image, image_problem = None, None, None, None
    if found is not None:
        name, cc, detected, source = found
        gpu_driver = given_driver or detected
        gpu_plan = _gpu_plan(name, cc, gpu_driver, source)
        try:
            image = gpus.image_for(cc, gpu_driver)
        except ValueError as exc:
            image_problem = str(exc)
    elif suite.device.startswith("cuda"):
        image_problem = f"suite {suite.name} needs a GPU and none is visible (try --gpu NAME)"
    missing = missing_compilers() if present else image.missing_compilers if image else ()
    machine = Machine(cc=cc, image=image, missing_compilers=missing)
    names = list(suite.model.names)
    steps = []
    if "train" in suite.steps:
        steps.append(
            _step(suite, "train", suite.train, suite.data.dataset, names, machine, gpu_plan)
        )
    if "transfer" in suite.steps:
        transfer = suite.transfer
        steps.append(_step(suite, "transfer", transfer, transfer.dataset, names, machine, gpu_plan))
    deploy = bool({"deploy", "export"} & set(suite.steps))
    estimates = [s.estimate_s for s in steps if s.estimate_s is not None]
    return Plan(
        suite=suite.name,
        quick=quick,
        device=suite.device,
        gpu=gpu_plan,
        image=ImagePlan.of(image, suite.name) if image else None,
        image_problem=image_problem,
        cudnn=cc is None or gpus.cudnn_usable(cc),
        steps=steps,
        throughput_batches=list(suite.deploy.throughput_batches) if deploy else [],
        targets=_targets(suite, machine, present) if deploy else [],
        estimate_s=sum(estimates) if steps and len(estimates) == len(steps) else None,
        estimate_assumption=estimate.ASSUMPTION,
    )
