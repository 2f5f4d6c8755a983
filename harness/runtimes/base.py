"""The one interface every inference runtime implements, and the registry that names them.

A runtime loads one artifact file and maps a float32 NCHW batch (normalised with
harness.data.normalize) to logits. Adding a backend (OpenVINO, ExecuTorch, ...) is one module
with one `@register` class; nothing else changes.

run(batch) is stage -> forward -> fetch: a GPU runtime stages the batch in device memory,
forward leaves its output there and fetch copies it back, so the timing loop can time forward
alone (between two sync() calls) on inputs already resident, as a deployed server would run.
"""

from __future__ import annotations

import importlib.util
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.gpu.catalog import Image
from resnest_bench.harness.host.cgroups import usable_cpus

RUNTIMES: dict[str, type[Runtime]] = {}


@dataclass(frozen=True)
class Package:
    """An optional CPU-runtime extra: the module it imports, its pip name, the extra of
    resnest-bench that installs it. Only the CPU image carries these extras."""

    module: str
    pip: str
    extra: str


@dataclass(frozen=True)
class Machine:
    """Where a plan's targets would run: the GPU's compute capability (None: CPU only), the
    image that would carry them (None: no GPU image) and the compilers torch.compile lacks."""

    cc: tuple[int, int] | None
    image: Image | None
    missing_compilers: tuple[str, ...]


class Runtime(ABC):
    """Load an artifact once, then run batches. `threads` is the CPU threads it may use.

    Subclasses set `name` (registry key) and `artifacts`, the artifact kinds they run
    (harness.artifacts.ARTIFACTS keys; each one is a measured target, in that order). A
    runtime from an optional extra names its `package` (the module, the pip name and the
    extra): it is unavailable where the module is missing, and skipped in the GPU images.
    Others override `unavailable_reason` (a provider, a compiler). Heavy imports (torch,
    onnxruntime) stay inside methods: config validation imports this registry.
    """

    name: ClassVar[str]
    artifacts: ClassVar[tuple[str, ...]]
    batching: ClassVar[str | None] = None  # how a batch runs when not as one call (the record)
    # A variant of another runtime on the same files (bf16 on fp32 ones): its targets are named
    # "<family>:<precision>", and it wants the family's own format built.
    family: ClassVar[str | None] = None
    precision: ClassVar[str | None] = None
    package: ClassVar[Package | None] = None  # the optional extra this runtime needs

    def __init__(self, threads: int | None = None, device: str = "cpu") -> None:
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise BenchError(f"threads must be a positive integer, got {threads!r}")
        self.threads = threads if threads is not None else usable_cpus()
        self.device = self.placement(device)
        self._loaded: str | None = None

    @classmethod
    def placement(cls, device: str) -> str:
        """Where this runtime runs when the suite runs on `device` ("cpu", "cuda", "cuda:N"):
        the CPU, unless the runtime runs on a GPU."""
        return "cpu"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this runtime cannot run here (one line, with what to do), or None if it can."""
        package = cls.package
        if package is not None and importlib.util.find_spec(package.module) is None:
            return f"{package.pip} is not installed: pip install 'resnest-bench[{package.extra}]'"
        return None

    @classmethod
    def plan_skip_reason(cls, machine: Machine) -> str | None:
        """Why this runtime would be skipped on `machine` (a GPU and image, maybe not this
        one), or None if it would run; `resnest-bench plan` asks every runtime. Only the CPU
        image carries the optional extras: a GPU image has no use for them."""
        if cls.package is not None and machine.image is not None:
            service = machine.image.service
            return f"the {service} image does not install {cls.package.pip} (CPU image only)"
        return None

    def load(self, artifact: str | os.PathLike[str]) -> None:
        """Prepare the model in `artifact` for inference (session creation, compilation)."""
        path = Path(artifact)
        if not path.is_file():
            raise BenchError(f"{self.name}: model file not found: {path} (run the export first)")
        self._load(path)
        self._loaded = str(path)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, C, H, W) -> float32 logits (N, classes)."""
        return self.fetch(self.forward(self.stage(batch)))

    def stage(self, batch: np.ndarray) -> Any:
        """The checked batch where forward() reads it (device memory for a GPU runtime);
        slicing the result along the batch axis gives staged batches too."""
        if self._loaded is None:
            raise BenchError(f"{self.name}: run() called before load()")
        if batch.dtype != np.float32 or batch.ndim != 4:
            raise BenchError(
                f"{self.name}: expects a float32 NCHW batch, got {batch.dtype} {batch.shape}"
            )
        return self._stage(np.ascontiguousarray(batch))

    def forward(self, staged: Any) -> Any:
        """The model on a staged batch; the output stays where the model wrote it."""
        return self._run(staged)

    def fetch(self, output: Any) -> np.ndarray:
        """forward()'s output as float32 logits in host memory."""
        return output

    def sync(self) -> None:
        """Wait for the work queued on the device (a no-op where calls are synchronous)."""
        return None  # nothing to do on the CPU

    def release(self) -> None:
        """Give cached device memory back after an out-of-memory error."""
        return None  # nothing to do on the CPU

    def _stage(self, batch: np.ndarray) -> Any:
        return batch

    @abstractmethod
    def _load(self, path: Path) -> None: ...

    @abstractmethod
    def _run(self, batch: Any) -> Any: ...


def register(cls: type[Runtime]) -> type[Runtime]:
    """Class decorator: make a runtime reachable by its name."""
    if cls.name in RUNTIMES:
        raise ValueError(f"runtime {cls.name!r} registered twice")
    RUNTIMES[cls.name] = cls
    return cls


def runtime_class(name: str) -> type[Runtime]:
    """The registered class for `name`; BenchError listing the known names otherwise."""
    try:
        return RUNTIMES[name]
    except KeyError:
        raise BenchError(
            f"unknown runtime {name!r}; choose one of {', '.join(sorted(RUNTIMES))}"
        ) from None


def get_runtime(name: str, *, threads: int | None = None, device: str = "cpu") -> Runtime:
    """An unloaded runtime instance for a suite on `device` (runtime.device says where it
    runs); BenchError when unknown or not usable on this machine."""
    cls = runtime_class(name)
    reason = cls.unavailable_reason()
    if reason is not None:
        raise BenchError(f"runtime {name!r} is not available: {reason}")
    return cls(threads=threads, device=device)


def device_index(device: str) -> int:
    """N of "cuda:N"; 0 for "cuda" (the current device of a fresh process)."""
    found = re.fullmatch(r"cuda(?::(\d+))?", device)
    if found is None:
        raise BenchError(f"not a CUDA device: {device!r}")
    return int(found.group(1) or 0)


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is a device allocation failure (torch.cuda.OutOfMemoryError, or ONNX
    Runtime's failed allocation), which a smaller batch may avoid."""
    text = str(exc).lower()
    return (
        type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in text
        or "failed to allocate memory" in text
    )
