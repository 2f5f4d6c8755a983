"""Where and how fast training runs: device choice, precision, memory layout, compilation, power.

Everything that differs between a K80 and an H100 lives here, so the training loop itself
reads the same on every machine. The decisions themselves (auto precision, what a compute
capability allows, peak FLOP/s for MFU) come from the torch-free table in harness.gpu.catalog.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any, get_args

import torch
from torch import nn

from resnest_bench.harness.choices import CompileMode, Precision
from resnest_bench.harness.errors import BenchError, GpuRequiredError
from resnest_bench.harness.gpu import catalog as gpus
from resnest_bench.harness.results.training import AccelInfo

PRECISIONS: tuple[str, ...] = get_args(Precision)
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def c_compiler() -> str | None:
    """The C compiler Triton would use to build its kernel launchers ($CC, cc or gcc)."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def missing_compilers() -> tuple[str, ...]:
    """The compilers torch.compile on a GPU needs (harness.gpu.catalog.COMPILE_TOOLS) that this
    machine lacks; plan checks an image's packages against the same list."""
    return tuple(
        tool
        for tool, (env, programs) in gpus.COMPILE_TOOLS.items()
        if not (os.environ.get(env) or any(shutil.which(p) for p in programs))
    )


def device_capability(device: torch.device) -> tuple[int, int] | None:
    """Compute capability of a CUDA device; None on the CPU."""
    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def _cuda_missing_reason() -> str:
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support"
    return "no GPU is visible (check the driver, CUDA_VISIBLE_DEVICES or docker --gpus)"


def configure_inference_backends(device: str) -> None:
    """A deploy worker's process-wide switches, as configure_backends sets training's: cuDNN
    off where it has no kernels for the GPU (cuDNN 9 starts at sm_50: a K80's eager reference
    failed), TF32 off so an fp32 row is fp32. A spawned worker starts from torch's defaults
    (cuDNN on, cuDNN TF32 allowed), not from the training process's settings."""
    cc = device_capability(torch.device(device))
    if cc is None:
        return
    torch.backends.cudnn.enabled = gpus.cudnn_usable(cc)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def select_device(requested: str = "auto") -> torch.device:
    """'auto' (GPU if present), 'cpu', 'cuda'/'gpu' or 'cuda:N'; asking for a missing GPU fails."""
    name = requested.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "gpu":
        name = "cuda"
    if not re.fullmatch(r"cuda(:\d+)?", name):
        raise BenchError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        reason = _cuda_missing_reason()
        raise GpuRequiredError(f"device {requested!r} needs a CUDA GPU, but {reason}")
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise GpuRequiredError(f"device {requested!r} does not exist: {count} GPU(s) visible")
    return torch.device("cuda", device.index if device.index is not None else 0)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    from resnest_bench.harness.host.envinfo import cpu_model

    return cpu_model() or platform.machine() or "cpu"


@dataclass(frozen=True)
class Accel:
    """The speed settings of one run, validated for its device; `describe()` goes in results.

    A suite's values are validated when it loads; these checks are for what only the device
    can tell (bf16 and compile need newer GPUs, compile a C compiler) and for callers that
    build an Accel directly. precision "auto" and compile "auto" are resolved here, once, from
    the device (harness.gpu.catalog.auto_precision, resolve_compile); the *_reason fields say why.
    """

    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool | str = False
    compile_mode: str = "default"
    precision_reason: str = field(default="as requested", compare=False)
    compile_reason: str = field(default="as requested", compare=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BenchError(f"unknown precision {self.precision!r}; use one of {PRECISIONS}")
        if self.compile_mode not in COMPILE_MODES:
            raise BenchError(
                f"unknown compile mode {self.compile_mode!r}; use one of {COMPILE_MODES}"
            )
        cc = device_capability(self.device)
        if self.precision == "auto":
            precision, reason = gpus.auto_precision(cc)
            object.__setattr__(self, "precision", precision)
            object.__setattr__(self, "precision_reason", reason)
        if self.compile == "auto":
            compiled, reason = gpus.resolve_compile("auto", cc, missing_compilers())
            object.__setattr__(self, "compile", compiled)
            object.__setattr__(self, "compile_reason", reason)
        if cc is None:
            return
        gpu = torch.cuda.get_device_name(self.device)
        problem = gpus.precision_problem(self.precision, cc)
        if problem is None and self.compile:
            problem = gpus.compile_problem(cc, missing_compilers())
        if problem is not None:
            raise BenchError(f"{gpu}: {problem}")

    @property
    def cudnn_enabled(self) -> bool:
        """cuDNN is switched off where its kernels do not reach the GPU (Kepler, sm_37)."""
        cc = device_capability(self.device)
        return cc is None or gpus.cudnn_usable(cc)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _AUTOCAST.get(self.precision)

    @property
    def name(self) -> str:
        return device_name(self.device)

    def configure_backends(self) -> None:
        """Process-wide switches: cuDNN on where it has kernels for the GPU, autotuning on;
        TF32 only when tf32 is asked for.

        PyTorch enables TF32 for cuDNN convolutions by default, so fp32 must turn it off
        explicitly or an "fp32" number on an A100 would silently be a TF32 number.
        """
        tf32 = self.precision == "tf32"
        torch.backends.cudnn.enabled = self.cudnn_enabled
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for forward and loss; a no-op for fp32/tf32."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling guards fp16's narrow exponent; bf16 and fp32 need none (disabled)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    @property
    def fused_sgd(self) -> bool:
        """Whether SGD's fused kernel (one launch updates every parameter, no per-tensor ops)
        exists for this device type: CUDA, and the CPU in recent PyTorch."""
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        return self.device.type in _get_fused_kernels_supported_devices()

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move `model` to the device and layout; return what to call (compiled or not).

        The returned module may be a compiled wrapper: keep the original for state_dict().
        """
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if not self.compile:
            return model
        mode = None if self.compile_mode == "default" else self.compile_mode
        return torch.compile(model, mode=mode)

    def peak_flops(self) -> float | None:
        return gpus.peak_flops(self.name, self.precision) if self.device.type == "cuda" else None

    def describe(self) -> AccelInfo:
        return AccelInfo(
            device=str(self.device),
            device_name=self.name,
            precision=self.precision,
            precision_reason=self.precision_reason,
            channels_last=self.channels_last,
            compile=self.compile,
            compile_mode=self.compile_mode if self.compile else None,
            cudnn_benchmark=self.device.type == "cuda" and self.cudnn_enabled,
            cudnn_enabled=self.cudnn_enabled,
            peak_flops=self.peak_flops(),
            fused_optimizer=self.fused_sgd,
        )


def release_device_memory(models: list[nn.Module]) -> int:
    """Move trained models to the CPU and hand the allocator's cached blocks back to the
    driver before the deploy workers (other processes) start on the same GPU: the training
    process would otherwise keep every model and the cache for the whole deploy. Returns the
    bytes torch still holds on the GPUs afterwards (0 on the CPU)."""
    for model in models:
        model.cpu()
    if not torch.cuda.is_initialized():
        return 0
    import gc

    gc.collect()
    torch.cuda.empty_cache()
    return sum(torch.cuda.memory_reserved(i) for i in range(torch.cuda.device_count()))


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


@dataclass(frozen=True)
class EnergyReading:
    joules: float
    mean_watts: float
    method: str  # "counter" (NVML total-energy counter, Volta+) or "sampled" (power x time)


class PowerMeter:
    """Energy used by one GPU between start() and stop(), read through NVML.

    Volta and newer keep a millijoule counter, which is exact; older GPUs (K80, P100) only
    report instantaneous power, so a background thread samples it and integrates.
    """

    def __init__(self, nvml: Any, handle: Any, interval_s: float = 0.1) -> None:
        self._nvml, self._handle, self._interval = nvml, handle, interval_s
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._e0: float | None = None

    @classmethod
    def for_device(cls, device: torch.device) -> PowerMeter | None:
        """A meter for a CUDA device, or None on CPU or where NVML cannot be used."""
        if device.type != "cuda":
            return None
        try:
            import pynvml  # from nvidia-ml-py

            pynvml.nvmlInit()
            props = torch.cuda.get_device_properties(device)
            uuid = getattr(props, "uuid", None)
            if uuid is not None:
                handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
            else:
                handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        except Exception:  # ImportError, NVMLError of many kinds: energy is optional
            return None
        return cls(pynvml, handle)

    def _energy_mj(self) -> float | None:
        try:
            return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:  # NVML_ERROR_NOT_SUPPORTED before Volta
            return None

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):
                watts = self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
                self._samples.append((time.perf_counter(), watts))

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._e0 = self._energy_mj()
        if self._e0 is None:
            self._samples, self._stop = [], threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def stop(self) -> EnergyReading | None:
        elapsed = time.perf_counter() - self._t0
        if self._e0 is not None:
            end = self._energy_mj()
            if end is None or elapsed <= 0:
                return None
            joules = (end - self._e0) / 1000.0
            return EnergyReading(joules, joules / elapsed, "counter")
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if not self._samples or elapsed <= 0:
            return None
        mean_watts = sum(w for _, w in self._samples) / len(self._samples)
        return EnergyReading(mean_watts * elapsed, mean_watts, "sampled")
