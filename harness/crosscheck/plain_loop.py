"""A plain batch-1 loop over one artifact, written the way each runtime's own documentation
shows it, run as its own process:

    python -m resnest_bench.harness.crosscheck.plain_loop ENGINE MODEL --threads N --shape S

It shares no timing, threading or session code with the harness: the only setting it makes is
the thread count through the runtime's own API (and, with --idle-sleep, ONNX Runtime's spinning
off, as the harness does on a shared host). It prints `ready`, then answers each stdin line
`CALLS SECONDS` with the median seconds of at least CALLS calls lasting at least SECONDS,
until `stop` or end of input. Random inputs: speed does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

Call = Callable[[], object]


def torch_loop(model_path: str, threads: int, shape: tuple[int, ...], how: str) -> Call:
    """model(x) under inference_mode after torch.set_num_threads; how "compile": torch.compile
    with inductor's freezing on, as PyTorch's CPU inference tutorial sets it; "bf16": under
    autocast to bfloat16."""
    import contextlib

    import torch

    from resnest_bench.harness.checkpoints import load_torch_artifact

    torch.set_num_threads(threads)
    model = load_torch_artifact(model_path)
    if how == "compile":
        import torch._inductor.config

        torch._inductor.config.freezing = True
        model = torch.compile(model)
    x = torch.randn(shape)
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if how == "bf16"
        else contextlib.nullcontext
    )

    def call() -> object:
        with torch.inference_mode(), autocast():
            return model(x)

    return call


def onnxruntime_loop(model: str, threads: int, shape: tuple[int, ...], idle_sleep: bool) -> Call:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if idle_sleep:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.rand(*shape).astype(np.float32)}
    return lambda: session.run(None, feed)


def openvino_loop(model_path: str, threads: int, shape: tuple[int, ...], precision: str) -> Call:
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision}
    request = ov.Core().compile_model(model_path, "CPU", config).create_infer_request()
    x = np.random.rand(*shape).astype(np.float32)
    return lambda: request.infer({0: x})


def executorch_loop(model_path: str, threads: int, shape: tuple[int, ...]) -> Call:
    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    portable_lib._unsafe_reset_threadpool(threads)
    method = Runtime.get().load_program(model_path).load_method("forward")
    x = torch.randn(shape)
    return lambda: method.execute([x])


def litert_loop(model_path: str, threads: int) -> Call:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model_path, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.random.rand(*detail["shape"]).astype(np.float32))
    return interpreter.invoke


ENGINES = (
    "torch",
    "torch-compile",
    "torch-bf16",
    "onnxruntime",
    "openvino",
    "openvino-bf16",
    "executorch",
    "litert",
)


def make_call(engine: str, model: str, threads: int, shape: tuple[int, ...], idle: bool) -> Call:
    if engine.startswith("torch"):
        return torch_loop(model, threads, shape, how=engine.partition("-")[2])
    if engine == "onnxruntime":
        return onnxruntime_loop(model, threads, shape, idle)
    if engine.startswith("openvino"):
        return openvino_loop(model, threads, shape, "bf16" if engine.endswith("bf16") else "f32")
    if engine == "executorch":
        return executorch_loop(model, threads, shape)
    return litert_loop(model, threads)


def one_round(call: Call, calls: int, seconds: float) -> float:
    """Median seconds per call over at least `calls` calls and `seconds` seconds."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--shape", required=True, help="input shape, e.g. 1,3,32,32")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--idle-sleep", action="store_true", help="ONNX Runtime spinning off")
    args = parser.parse_args(argv)
    shape = tuple(int(side) for side in args.shape.split(","))
    call = make_call(args.engine, args.model, args.threads, shape, args.idle_sleep)
    for _ in range(args.warmup):
        call()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "stop":
            break
        calls, seconds = line.split()
        print(f"{one_round(call, int(calls), float(seconds)):.9f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
