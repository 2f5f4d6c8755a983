"""`resnest-bench doctor`: check this machine in seconds before a run that may take hours.

Quick checks (each one line, OK / WARN / SKIP / FAIL with its reason): the suite's GPU is
visible, the driver runs the image that serves it, the capability allows the precision, NVML
for energy, TensorRT really loads, a C compiler when compile is on, free disk for checkpoints
and reports, the data cache writable. `run` refuses on a FAIL (preflight); `doctor` adds a smoke
run: every stage for two optimiser steps of the tiny model on synthetic data, into a temp folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from resnest_bench.harness.config import Suite, merge, validate_suite
from resnest_bench.harness.errors import BenchError, PartlyFailed, one_line
from resnest_bench.harness.gpu import catalog as gpus
from resnest_bench.harness.results import read_result

if TYPE_CHECKING:
    from resnest_bench.harness.stages import RunRequest

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


def host_gpus(query: Callable[[], list] | None = None) -> list | str:
    """The host's GPUs as the driver lists them (nvidia-smi/NVML), read before torch: a driver
    too old for this torch build makes torch see no GPU at all, and only the driver can say
    which image fits. A string: why they could not be read."""
    from resnest_bench.harness.gpu import launcher

    try:
        return (query or launcher.query_gpus)()
    except BenchError as exc:
        return str(exc)


def default_suite(host: list | str) -> tuple[str, str]:
    """The suite `doctor` checks when none is named, and why: the gpu suite where the driver
    lists a GPU, else the CPU runtime suite (a CPU machine must not fail the GPU checks)."""
    if isinstance(host, list) and host:
        return "gpu", f"the driver lists {len(host)} GPU(s)"
    return "cpu-runtime", f"no GPU listed ({host or 'none'})"


def _this_image() -> gpus.Image | None:
    running = os.environ.get("RESNEST_BENCH_IMAGE_TAG")
    return next((i for i in gpus.IMAGES if running and i.tag.endswith(f":{running}")), None)


def _driver_problem(cc: tuple[int, int], driver: tuple[int, ...] | None) -> tuple[str, str]:
    """(status, detail) of this driver against the images that serve `cc` and the one we are
    in, if any."""
    shown = gpus.format_driver(driver) if driver else "unknown"
    try:
        best = gpus.image_for(cc, driver)
    except ValueError as exc:
        return "FAIL", str(exc)
    here = _this_image()
    too_old = (
        here is not None
        and driver is not None
        and not gpus.driver_at_least(driver, here.min_driver)
    )
    if here is not None and too_old:
        need = gpus.format_driver(here.min_driver)
        return "FAIL", (
            f"this image ({here.service}, CUDA {here.cuda}) needs driver >= {need}, "
            f"the host has {shown}: use {best.service}"
        )
    return "OK", f"driver {shown}: {best.service} serves it"


def check_gpu(suite: Suite, host: list | str = "") -> tuple[Check, tuple[int, int] | None]:
    """The suite's device is there; returns the GPU's compute capability for the next checks.
    When torch sees no GPU but the driver lists one (`host`), the failure names the image the
    driver and card need instead of "check the driver"."""
    from resnest_bench.harness.gpu.accel import device_capability, device_name, select_device

    try:
        device = select_device(suite.device)
    except BenchError as exc:
        index = int(suite.device.partition(":")[2] or 0)
        if isinstance(host, list) and index < len(host):
            listed = host[index]
            status, why = _driver_problem(listed.compute_capability, listed.driver)
            detail = f"torch sees no GPU, the driver lists {listed.describe()}: {why}"
            if status == "OK":  # the driver is not the reason: say torch's
                detail += f"; {exc}"
            return Check(name="GPU", status="FAIL", detail=detail), None
        driver = f" (nvidia-smi: {host})" if isinstance(host, str) and host else ""
        return Check(name="GPU", status="FAIL", detail=f"{exc}{driver}"), None
    cc = device_capability(device)
    if cc is None:
        detail = f"suite device {suite.device!r} runs on the CPU ({device_name(device)})"
        return Check(
            name="GPU", status="SKIP" if suite.device == "cpu" else "OK", detail=detail
        ), None
    return Check(name="GPU", status="OK", detail=f"{device_name(device)} (sm_{cc[0]}{cc[1]})"), cc


def check_driver(cc: tuple[int, int], host: list | str) -> Check:
    """The driver runs an image that serves this GPU, and the image we are in, if any."""
    if isinstance(host, str):
        return Check(name="driver", status="WARN", detail=f"cannot read the driver version: {host}")
    driver = host[0].driver if host else None
    status, detail = _driver_problem(cc, driver)
    return Check(name="driver", status=status, detail=detail)


def check_kernels(cc: tuple[int, int], arch_list: list[str] | None = None) -> Check:
    """This torch build has kernels for the GPU (torch.cuda.get_arch_list(), which answers
    without a GPU): torch itself only warns, and the first kernel fails with "no kernel image"."""
    import torch

    arches = torch.cuda.get_arch_list() if arch_list is None else arch_list
    here = _this_image()
    where = f"{here.service} (torch {torch.__version__})" if here else f"torch {torch.__version__}"
    if not arches:
        return Check(name="kernels", status="SKIP", detail=f"{where} lists no CUDA kernels")
    problem = gpus.kernel_problem(cc, arches, where)
    if problem:
        return Check(name="kernels", status="FAIL", detail=problem)
    return Check(name="kernels", status="OK", detail=f"{where} has kernels for sm_{cc[0]}{cc[1]}")


def check_image_kernels() -> Check:
    """In a GPU image: the kernel table plan and the launcher route by is what its torch and
    onnxruntime really carry (needs no GPU, so CI checks it in the built image)."""
    here = _this_image()
    if here is None:
        return Check(name="image kernels", status="SKIP", detail="not in a GPU image")
    from resnest_bench.harness.gpu.image_kernels import table_mismatches

    wrong = table_mismatches(here)
    if wrong:
        return Check(name="image kernels", status="FAIL", detail="; ".join(wrong))
    return Check(
        name="image kernels",
        status="OK",
        detail=f"{here.service}: torch {here.torch_kernels.describe()}; "
        f"{here.onnxruntime} {here.ort_kernels.describe() if here.ort_kernels else '(CPU)'}",
    )


def check_compute_mode(suite: Suite, run: Callable[..., object] | None = None) -> Check:
    """The deploy workers are processes of their own beside the training process, which still
    holds its CUDA context: in EXCLUSIVE_PROCESS mode the first worker cannot open the GPU."""
    import subprocess

    from resnest_bench.harness.gpu import launcher

    if "deploy" not in suite.steps:
        return Check(name="compute mode", status="SKIP", detail="no deploy step")
    index = int(suite.device.partition(":")[2] or 0)
    try:
        answer = launcher.smi(run or subprocess.run, "compute_mode")
    except BenchError as exc:
        return Check(name="compute mode", status="WARN", detail=f"cannot read it: {exc}")
    modes = [line.strip() for line in answer.stdout.splitlines() if line.strip()]
    mode = modes[index] if answer.returncode == 0 and index < len(modes) else "unknown"
    if mode == "Exclusive_Process":
        return Check(
            name="compute mode",
            status="FAIL",
            detail=f"GPU {index} is Exclusive_Process: the deploy workers (separate processes) "
            "cannot open it while training holds it; `nvidia-smi -i "
            f"{index} -c DEFAULT` (root) or run deploy on its own: --steps deploy --checkpoint",
        )
    return Check(name="compute mode", status="OK", detail=f"GPU {index}: {mode}")


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
    """compile = true needs Triton's sm_70+ and gcc/g++ (FAIL without); "auto" says what it
    resolves to here (eager where compile cannot run, never a failure)."""
    from resnest_bench.harness.gpu.accel import missing_compilers

    asked = {s: getattr(suite, s).compile for s in ("train", "transfer") if s in suite.steps}
    if cc is None or not any(asked.values()):
        return Check(name="compile", status="SKIP", detail="no torch.compile on a GPU")
    missing = missing_compilers()
    forced = [s for s, c in asked.items() if c is True]
    problem = gpus.compile_problem(cc, missing)
    if problem and forced:
        return Check(name="compile", status="FAIL", detail=f"{', '.join(forced)}: {problem}")
    said = [f"{s}: {gpus.resolve_compile(c, cc, missing)[1]}" for s, c in asked.items() if c]
    return Check(name="compile", status="OK", detail="; ".join(said))


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
    host = host_gpus() if suite.device.startswith("cuda") else []
    gpu, cc = check_gpu(suite, host)
    checks = [gpu, check_image_kernels()]
    if cc is not None:
        checks += [check_kernels(cc), check_driver(cc, host), check_compute_mode(suite)]
        checks.append(check_nvml())
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


def _failed_reasons(reports: Path) -> list[str]:
    """'<step or target>: <reason>' for everything that failed in the results under `reports`."""
    reasons = []
    for path in sorted(reports.rglob("result.json")):
        result = read_result(path)
        reasons += [f"{step}: {why}" for step, why in result.failed_steps.items()]
        targets = result.deployment.targets if result.deployment else []
        reasons += [f"{t.target}: {t.reason}" for t in targets if t.status == "failed"]
    return reasons


def smoke(suite: Suite) -> Check:
    """Run every stage of the smoke suite into a temporary folder (removed afterwards)."""
    from resnest_bench.harness.pipeline import run_suite
    from resnest_bench.harness.stages import RunRequest

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
        except PartlyFailed:  # its report is in the folder about to go: say the reasons here
            why = "; ".join(_failed_reasons(Path(tmp) / "reports"))
            return Check(name="smoke", status="FAIL", detail=f"failed: {why}")
        except Exception as exc:  # the point of a smoke test: whatever breaks, say it in a line
            return Check(name="smoke", status="FAIL", detail=one_line(exc))
    steps = ", ".join(small.steps)
    return Check(name="smoke", status="OK", detail=f"{steps} on resnest-tiny ({small.device})")


def preflight(request: RunRequest, named: str) -> None:
    """Refuse in seconds what would fail later: a sweep suite given to `run`, a step command
    without the --checkpoint it needs, a suite that fails a quick check (a step command's
    folders are probed as it starts, the fault named: read-only, full, no permission)."""
    suite = request.suite
    if suite.sweep is not None:
        raise BenchError(f"{named} is a sweep suite: run `resnest-bench sweep {named}`")
    if request.suite_path is None:
        if "train" not in suite.steps and request.checkpoint is None:
            raise BenchError(f"{named} needs --checkpoint (a trained model to start from)")
        return
    for check in failures(quick_checks(suite, request.reports_root, request.data_root)):
        raise BenchError(f"preflight (resnest-bench doctor): {check.line()}")
