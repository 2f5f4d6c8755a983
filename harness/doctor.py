"""`resnest-bench doctor`: check this machine in seconds before a run that may take hours.

Quick checks (each one line, OK / WARN / SKIP / FAIL with its reason): the suite's GPU is
visible, the driver runs the image that serves it, the capability allows the precision, NVML
for energy, TensorRT really loads, a C compiler when compile is on, free disk for checkpoints
and reports, the data cache writable. `run` does the quick checks first and refuses on a FAIL;
`doctor` adds a smoke run: every stage of the suite for two optimiser steps of the tiny model on
synthetic data, on the suite's device, into a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from resnest_bench.harness import gpus
from resnest_bench.harness.config import Suite, merge, validate_suite
from resnest_bench.harness.errors import BenchError

Status = Literal["OK", "WARN", "SKIP", "FAIL"]
# Disk a run needs per trained parameter (bytes): each model's checkpoint (fp32 weights and SGD
# momentum, 8 B) written atomically (old and new side by side: x2), and the artifacts of the
# deployed one (model.pt 4, ONNX fp32 4, int8 1, .ort 1 B).
CHECKPOINT_BYTES_PER_PARAM = 2 * 8
ARTIFACT_BYTES_PER_PARAM = 10
REPORT_MARGIN_BYTES = 200 * 2**20  # logs, plots, result.json, temporary exports


class Check(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


def check_gpu(suite: Suite) -> tuple[Check, tuple[int, int] | None]:
    """The suite's device is there; returns the GPU's compute capability for the next checks."""
    from resnest_bench.harness.accel import device_capability, device_name, select_device

    try:
        device = select_device(suite.device)
    except BenchError as exc:
        return Check(name="GPU", status="FAIL", detail=str(exc)), None
    cc = device_capability(device)
    if cc is None:
        detail = f"suite device {suite.device!r} runs on the CPU ({device_name(device)})"
        return Check(
            name="GPU", status="SKIP" if suite.device == "cpu" else "OK", detail=detail
        ), None
    return Check(name="GPU", status="OK", detail=f"{device_name(device)} (sm_{cc[0]}{cc[1]})"), cc


def check_driver(cc: tuple[int, int], query: Callable[[], list] | None = None) -> Check:
    """The driver runs an image that serves this GPU, and the image we are in, if any."""
    from resnest_bench.harness import launcher

    try:
        host = (query or launcher.query_gpus)()
        driver = host[0].driver if host else None
    except BenchError as exc:
        return Check(name="driver", status="WARN", detail=f"cannot read the driver version: {exc}")
    shown = gpus.format_driver(driver) if driver else "unknown"
    try:
        best = gpus.image_for(cc, driver)
    except ValueError as exc:
        return Check(name="driver", status="FAIL", detail=str(exc))
    running = os.environ.get("RESNEST_BENCH_IMAGE_TAG")
    here = next((i for i in gpus.IMAGES if running and i.tag.endswith(f":{running}")), None)
    if here is not None and driver is not None and driver < here.min_driver:
        need = gpus.format_driver(here.min_driver)
        return Check(
            name="driver",
            status="FAIL",
            detail=f"this image ({here.service}, CUDA {here.cuda}) needs driver >= {need}, "
            f"the host has {shown}: use {best.service}",
        )
    return Check(name="driver", status="OK", detail=f"driver {shown}: {best.service} serves it")


def check_precision(suite: Suite, cc: tuple[int, int] | None) -> Check:
    """Every training step's precision (auto resolved) is one this GPU can train in."""
    chosen = []
    for step in ("train", "transfer"):
        if step not in suite.steps:
            continue
        section = getattr(suite, step)
        precision, why = gpus.resolve_precision(section.precision, cc)
        problem = gpus.precision_problem(precision, cc)
        if problem:
            return Check(name="precision", status="FAIL", detail=f"{step}.precision: {problem}")
        chosen.append(f"{step} {precision} ({why})")
    if not chosen:
        return Check(name="precision", status="SKIP", detail="no training step")
    return Check(name="precision", status="OK", detail="; ".join(chosen))


def check_nvml() -> Check:
    """Energy per epoch needs NVML; without it runs go on and say so."""
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, ...
        why = "nvidia-ml-py is not installed" if isinstance(exc, ImportError) else str(exc)
        return Check(
            name="NVML",
            status="WARN",
            detail=f"{why}: energy will not be measured (pip install nvidia-ml-py)",
        )
    return Check(name="NVML", status="OK", detail="energy per epoch will be measured")


def check_tensorrt(suite: Suite) -> Check:
    wanted = suite.deploy.runtimes is None or "ort-tensorrt" in suite.deploy.runtimes
    if "deploy" not in suite.steps or not wanted:
        return Check(name="TensorRT", status="SKIP", detail="no ort-tensorrt target")
    try:
        import onnxruntime as ort
    except ImportError:
        return Check(name="TensorRT", status="SKIP", detail="onnxruntime is not installed")
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        return Check(name="TensorRT", status="SKIP", detail="this onnxruntime has no TensorRT")
    from resnest_bench.harness.runtimes.ort import provider_trial

    why = provider_trial("TensorrtExecutionProvider")
    if why is not None:
        return Check(
            name="TensorRT", status="WARN", detail=f"listed, but {why}: ort-tensorrt is skipped"
        )
    return Check(name="TensorRT", status="OK", detail="a trial session ran on TensorRT")


def check_compiler(suite: Suite, cc: tuple[int, int] | None) -> Check:
    from resnest_bench.harness.accel import c_compiler

    steps = [s for s in ("train", "transfer") if s in suite.steps and getattr(suite, s).compile]
    if not steps or cc is None:
        return Check(name="C compiler", status="SKIP", detail="no torch.compile on a GPU")
    problem = gpus.compile_problem(cc, c_compiler() is not None)
    if problem:
        return Check(name="C compiler", status="FAIL", detail=f"{', '.join(steps)}: {problem}")
    return Check(name="C compiler", status="OK", detail=f"{c_compiler()} for Triton")


def disk_needed(suite: Suite) -> int:
    """Bytes a run of `suite` writes: checkpoints per trained model, artifacts, reports."""
    from resnest_bench.models.profile import model_summary

    params = [int(model_summary(n, stem=suite.model.stem)["params"]) for n in suite.model.names]
    runs = len(params) * ("train" in suite.steps) + ("transfer" in suite.steps)
    deployed = (
        max(params) * ARTIFACT_BYTES_PER_PARAM * bool({"deploy", "export"} & set(suite.steps))
    )
    return runs * max(params) * CHECKPOINT_BYTES_PER_PARAM + deployed + REPORT_MARGIN_BYTES


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def check_disk(suite: Suite, reports_root: Path) -> Check:
    need = disk_needed(suite)
    free = shutil.disk_usage(_existing(reports_root)).free
    detail = (
        f"{free / 2**30:.1f} GiB free under {reports_root}, the run needs ~{need / 2**30:.2f} GiB"
    )
    return Check(name="disk", status="OK" if free >= need else "FAIL", detail=detail)


def check_data_cache(data_root: Path) -> Check:
    """Writable without creating anything: a trial file if it exists, else its first parent."""
    try:
        if data_root.is_dir():
            with tempfile.NamedTemporaryFile(dir=data_root, prefix=".doctor-"):
                pass
        elif not (_existing(data_root).is_dir() and os.access(_existing(data_root), os.W_OK)):
            raise PermissionError(f"cannot create it under {_existing(data_root)}")
    except OSError as exc:
        return Check(name="data cache", status="FAIL", detail=f"{data_root} is not writable: {exc}")
    return Check(name="data cache", status="OK", detail=f"{data_root} is writable")


def quick_checks(suite: Suite, reports_root: Path, data_root: Path) -> list[Check]:
    """Every check that takes seconds; `run` refuses to start on any FAIL."""
    gpu, cc = check_gpu(suite)
    checks = [gpu, check_driver(cc), check_nvml()] if cc is not None else [gpu]
    return [
        *checks,
        check_precision(suite, cc),
        check_tensorrt(suite),
        check_compiler(suite, cc),
        check_disk(suite, reports_root),
        check_data_cache(data_root),
    ]


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == "FAIL"]


def smoke_suite(suite: Suite) -> Suite:
    """The suite's steps, device and speed settings on the tiny model: two optimiser steps of
    synthetic data per training step, a one-image-per-target deploy."""
    tiny = {"epochs": 1, "batch_size": 8, "milestones": [], "step_size": None, "auto_batch": False}
    smoke = {
        "name": f"{suite.name}-smoke",
        "model": {"names": ["resnest-tiny"], "stem": "cifar"},
        "data": {"dataset": "synthetic", "train_subset": 16, "test_subset": 8, "small_subset": 4},
        "train": tiny,
        "transfer": tiny,
        "deploy": {
            "throughput_batches": [2],
            "timed_images": 2,
            "calibration_images": 8,
            "int8_max_drop": 100.0,
            "timing": {"warmup": 0, "min_iters": 1, "min_seconds": 0.0},
        },
    }
    return validate_suite(merge(suite.model_dump(mode="json"), smoke), f"{suite.name} smoke")


def smoke(suite: Suite) -> Check:
    """Run every stage of the smoke suite into a temporary folder (removed afterwards)."""
    from resnest_bench.harness.pipeline import RunRequest, run_suite

    small = smoke_suite(suite)
    with tempfile.TemporaryDirectory(prefix="resnest-bench-doctor-") as tmp:
        request = RunRequest(
            suite=small,
            suite_path=None,
            quick=True,
            reports_root=Path(tmp) / "reports",
            data_root=Path(tmp) / "data",
            argv=["resnest-bench", "doctor", suite.name],
        )
        try:
            run_suite(request)
        except Exception as exc:  # the point of a smoke test: whatever breaks, say it in a line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Check(name="smoke", status="FAIL", detail=f"{type(exc).__name__}: {first}")
    steps = ", ".join(small.steps)
    return Check(name="smoke", status="OK", detail=f"{steps} on resnest-tiny ({small.device})")
