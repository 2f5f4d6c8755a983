"""ONNX Runtime sessions on CPU, CUDA and TensorRT; .onnx (fp32 or int8 QDQ) and .ort files.

Session settings are the ones a deployment would use: all graph optimisations, intra-op threads
set to the usable CPUs (cgroup-aware), one inter-op thread, sequential execution; idle workers
spin unless the thread policy (harness.measure.threads) sets `spinning` False.
"""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from resnest_bench.harness.errors import BenchError, one_line
from resnest_bench.harness.runtimes.base import (
    Machine,
    Runtime,
    device_index,
    out_of_memory,
    register,
)

# Graph optimisation for measured sessions: everything, layout changes for this CPU included
# (a deployment optimises for the machine it runs on).
SESSION_OPTIMIZATION = "all"
# ORT's own default for its process-wide logger (warnings and up), put back after a trial.
ORT_DEFAULT_SEVERITY = 2


def session_options(threads: int, optimization: str):
    """SessionOptions for `threads` intra-op threads at a named graph optimisation level
    ("disable", "basic", "extended" or "all")."""
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: ORT warns about every unused initializer
    return options


@functools.cache
def provider_trial(provider: str) -> str | None:
    """Why `provider` cannot run a session here, or None if it can. onnxruntime-gpu lists
    TensorRT (and CUDA) whether or not their libraries are installed: only a session tells."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "trial",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    # IR 8 goes with opset 17; onnx's default (its newest IR) is newer than older ONNX
    # Runtimes read (onnxruntime-gpu 1.28: max 13, onnx 1.23 writes 14), which failed the trial
    # for that reason instead of the provider's.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    # A provider whose libraries are missing is the answer, not noise: ORT's default logger
    # (the library load error) and its printed "EP Error" fallback banner are silenced here.
    ort.set_default_logger_severity(4)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # "not in available provider names"
            session = ort.InferenceSession(
                onnx.shape_inference.infer_shapes(model).SerializeToString(),
                sess_options=options,
                providers=[provider],
            )
    except Exception as exc:
        return f"a trial session failed: {one_line(exc, typed=False)}"
    finally:
        ort.set_default_logger_severity(ORT_DEFAULT_SEVERITY)
    used = session.get_providers()[0]
    return None if used == provider else f"its libraries do not load ({used} ran instead)"


class OrtRuntime(Runtime):
    """An InferenceSession on `providers` (the first must really be used, or load fails)."""

    providers: ClassVar[tuple[str, ...]]
    # Idle intra-op workers spin (ORT's default); the thread policy turns it off on shared hosts.
    spinning: bool = True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)"
        missing = [p for p in cls.providers if p not in ort.get_available_providers()]
        if missing:
            return (
                f"this onnxruntime build has no {missing[0]} "
                "(install onnxruntime-gpu with CUDA/TensorRT libraries on a GPU machine)"
            )
        provider = cls.providers[0]
        why = None if provider == "CPUExecutionProvider" else provider_trial(provider)
        return None if why is None else f"onnxruntime lists {provider}, but {why}"

    def _load(self, path: Path) -> None:
        import onnxruntime as ort

        options = session_options(self.threads, SESSION_OPTIMIZATION)
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.spinning else "0"
        )
        if path.suffix == ".ort":
            options.add_session_config_entry("session.load_model_format", "ORT")
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=self.provider_options()
            )
        except Exception as exc:
            raise BenchError(
                f"{self.name}: cannot load {path}: corrupt or unsupported model "
                f"({one_line(exc, typed=False)}); "
                "re-export it"
            ) from None
        used = self.session.get_providers()
        if used[0] != self.providers[0]:
            raise BenchError(f"{self.name}: ONNX Runtime fell back to {used[0]} for {path}")
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise BenchError(f"{self.name}: {path} has {len(inputs)} inputs; expected one batch")
        self.input_name = inputs[0].name
        self.input_shape = tuple(inputs[0].shape)
        self.output_name = self.session.get_outputs()[0].name

    def provider_options(self) -> list[str | tuple[str, dict[str, object]]]:
        """The providers as InferenceSession takes them (names, or (name, options))."""
        return list(self.providers)

    def _run(self, batch: Any) -> Any:
        try:
            return self._session_run(batch)
        except Exception as exc:
            if out_of_memory(exc):
                raise  # a smaller batch may fit: the measurement tells the two apart
            shown = ", ".join(str(d) if isinstance(d, int) else "N" for d in self.input_shape)
            raise BenchError(
                f"{self.name}: model takes [{shown}] but got a batch of shape "
                f"{tuple(batch.shape)} ({type(exc).__name__})"
            ) from None

    def _session_run(self, batch: np.ndarray) -> Any:
        return self.session.run(None, {self.input_name: batch})[0]


@register
class OrtCpu(OrtRuntime):
    name = "ort-cpu"
    artifacts = ("onnx_fp32", "onnx_int8", "ort")
    providers = ("CPUExecutionProvider",)


@register
class OrtCuda(OrtRuntime):
    name = "ort-cuda"
    artifacts = ("onnx_fp32",)
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")

    # Inputs are staged in device memory as torch tensors (sliceable along the batch, like the
    # torch targets' staged inputs) and bound to the session by pointer; the output stays in
    # device memory until fetch(). A timed call is then the model's, as torch eager's is, not
    # the model's plus a host->device and a device->host copy.
    binding_device: ClassVar[str] = "cuda"

    @classmethod
    def placement(cls, device: str) -> str:
        """The suite's GPU; the first one when the suite runs on the CPU."""
        return device if device.startswith("cuda") else "cuda"

    def _bound_index(self) -> int:
        return 0 if self.binding_device == "cpu" else device_index(self.device)

    def _stage(self, batch: np.ndarray) -> Any:
        import torch

        where = "cpu" if self.binding_device == "cpu" else f"cuda:{self._bound_index()}"
        staged = torch.from_numpy(batch).to(where)
        self.sync()  # the copy is done before ONNX Runtime's own stream reads it
        return staged

    def _session_run(self, staged: Any) -> Any:
        binding = self.session.io_binding()
        index = self._bound_index()
        binding.bind_input(
            self.input_name,
            self.binding_device,
            index,
            np.float32,
            tuple(staged.shape),
            staged.data_ptr(),
        )
        binding.bind_output(self.output_name, self.binding_device, index)
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    def fetch(self, output: Any) -> np.ndarray:
        return output.numpy()

    def sync(self) -> None:
        if self.binding_device == "cuda":
            import torch

            torch.cuda.synchronize(self._bound_index())

    def release(self) -> None:
        if self.binding_device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def provider_options(self) -> list[str | tuple[str, dict[str, object]]]:
        """GPU providers on the suite's GPU (device_id), not on ONNX Runtime's default GPU 0."""
        index = self._bound_index()
        options = {
            # the CUDA provider computes fp32 convolutions and GEMMs in TF32 on sm_80+ unless
            # told not to: an fp32 row must be fp32
            "CUDAExecutionProvider": {"device_id": index, "use_tf32": 0},
            "TensorrtExecutionProvider": {"device_id": index},
        }
        return [(p, options[p]) if p in options else p for p in self.providers]

    @classmethod
    def plan_skip_reason(cls, machine: Machine) -> str | None:
        """Needs a GPU and an image whose onnxruntime is a CUDA build (not the Kepler one)
        with kernels for the GPU (its table in harness.gpu.catalog, read from the wheel)."""
        cc, image = machine.cc, machine.image
        if cc is None:
            return "no GPU"
        if image is not None and image.ort_kernels is None:
            return f"the {image.service} image has a CPU-only onnxruntime: {image.onnxruntime}"
        if image is not None and not image.ort_kernels.runs_on(cc):
            return (
                f"{image.onnxruntime} in {image.service} has no kernels for sm_{cc[0]}{cc[1]} "
                f"({image.ort_kernels.describe()})"
            )
        return None


@register
class OrtTensorRT(OrtCuda):
    """TensorRT builds its engine from the fp32 graph with TF32 allowed (its builder's default
    on sm_80+), and ONNX Runtime's TensorRT provider has no option to turn that off: the row is
    labelled tf32, not fp32 (before Ampere there is no TF32 and it computes fp32)."""

    name = "ort-tensorrt"
    precision = "tf32"
    artifacts = ("onnx_fp32",)
    providers = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

    @classmethod
    def plan_skip_reason(cls, machine: Machine) -> str | None:
        """onnxruntime-gpu lists the TensorRT provider, but no image installs TensorRT."""
        reason = super().plan_skip_reason(machine)
        if reason is None and machine.image is not None:
            return "TensorRT libraries are not installed in the image"
        return reason
