"""The independent peer of each target: the runtime vendor's own benchmark program where it
times what the harness times, a call's wall time (LiteRT's litert-benchmark), else a plain loop
(crosscheck.plain_loop). ONNX Runtime's perf tool (onnxruntime_perf_test) ships in no pip wheel.
OpenVINO's benchmark_app reports the plugin's own InferRequest.latency, which leaves out the
Python call around it (0.5-0.6 ms per call measured on a 2-core AMD EPYC Zen 5, at 2.7 ms
against 3.2-3.3 ms for every Python loop tried, pinning on or off): it runs beside the plain
loop as the vendor's figure, shown but not the peer.

A peer answers round(calls, seconds) with that round's median seconds per batch-1 call. Every
peer process starts with a clean environment (PATH, HOME, locale, virtualenv): nothing the
harness's own processes inherit reaches it, except the thread policy's shared-host setting,
which applies to every target alike and is passed on by name.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Protocol

from resnest_bench.harness.errors import BenchError

# What a peer process inherits from ours: where programs and packages are, and the locale.
KEPT_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
WARMUP_CALLS = 10


class Peer(Protocol):
    name: str

    def round(self, calls: int, seconds: float) -> float: ...

    def close(self) -> None: ...


def peer_environment(policy_env: dict[str, str]) -> dict[str, str]:
    """A clean environment plus the thread policy's shared-host variables (if any)."""
    env = {key: os.environ[key] for key in KEPT_VARIABLES if key in os.environ}
    return {**env, **policy_env}


def program(name: str) -> str | None:
    """An installed command: on PATH, or beside this interpreter (a venv not activated)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.is_file() else None)


class PlainLoop:
    """A crosscheck.plain_loop process kept for every round (a compile is paid once)."""

    def __init__(
        self,
        engine: str,
        model: Path,
        threads: int,
        shape: tuple[int, ...],
        env: dict[str, str],
        idle_sleep: bool,
    ) -> None:
        self.name = f"plain {engine} loop"
        command = [
            sys.executable,
            "-m",
            "resnest_bench.harness.crosscheck.plain_loop",
            engine,
            str(model),
            "--threads",
            str(threads),
            "--shape",
            ",".join(map(str, shape)),
            "--warmup",
            str(WARMUP_CALLS),
        ]
        if idle_sleep:
            command.append("--idle-sleep")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._expect("ready")

    def _expect(self, what: str) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line or (what == "ready" and line != "ready"):
            self.process.kill()
            _, err = self.process.communicate()
            last = (err.strip().splitlines() or [f"exit code {self.process.returncode}"])[-1]
            raise BenchError(f"{self.name} failed: {last}")
        return line

    def round(self, calls: int, seconds: float) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{calls} {seconds}\n")
        self.process.stdin.flush()
        return float(self._expect("median"))

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("stop\n")
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class BenchmarkApp:
    """OpenVINO's benchmark_app, one fresh run per round, pinned to what the harness runs: one
    stream, the same threads, the same inference precision, a static batch-1 shape."""

    def __init__(
        self,
        executable: str,
        model: Path,
        threads: int,
        shape: tuple[int, ...],
        env: dict[str, str],
        precision: str,
    ) -> None:
        self.name = "benchmark_app (OpenVINO, InferRequest.latency)"
        self.command = [
            executable,
            "-m",
            str(model),
            "-d",
            "CPU",
            "-hint",
            "none",
            "-nstreams",
            "1",
            "-nthreads",
            str(threads),
            "-infer_precision",
            precision,
            "-shape",
            "[" + ",".join(map(str, shape)) + "]",
        ]
        self.env = env

    def round(self, calls: int, seconds: float) -> float:
        command = [*self.command, "-t", str(max(1, math.ceil(seconds)))]
        text = _run(command, self.env, self.name)
        found = re.search(r"Median:\s*([0-9.]+)\s*ms", text)
        if found is None:
            raise BenchError(f"{self.name} printed no median latency")
        return float(found.group(1)) / 1e3

    def close(self) -> None:
        return None  # nothing kept between rounds


class LiteRtBenchmark:
    """LiteRT's litert-benchmark, one fresh run per round: the same threads, as many runs."""

    def __init__(self, executable: str, model: Path, threads: int, env: dict[str, str]) -> None:
        self.name = "litert-benchmark (LiteRT)"
        self.command = [executable, "--model", str(model), "--num_threads", str(threads)]
        self.command += ["--warmup_runs", str(WARMUP_CALLS)]
        self.env = env

    def round(self, calls: int, seconds: float) -> float:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "result.json"
            command = [*self.command, "--num_runs", str(calls), "--result_json", str(out)]
            _run(command, self.env, self.name)
            try:
                return float(json.loads(out.read_text())["latency"]["median_ms"]) / 1e3
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise BenchError(f"{self.name} wrote no median latency: {exc}") from None

    def close(self) -> None:
        return None  # nothing kept between rounds


def _run(command: list[str], env: dict[str, str], name: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{name} ran past 600 s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or [""])[-1]
        raise BenchError(f"{name} exited {done.returncode}: {last}")
    return done.stdout


# target's runtime -> the plain loop's engine (the vendor tool, where one exists, goes first)
PLAIN_ENGINES = {
    "torch-eager": "torch",
    "torch-compile": "torch-compile",
    "torch-bf16": "torch-bf16",
    "ort-cpu": "onnxruntime",
    "openvino": "openvino",
    "openvino-bf16": "openvino-bf16",
    "executorch": "executorch",
    "litert": "litert",
}


def no_peer_reason(runtime: str, device: str) -> str | None:
    """Why a target gets no peer (None: it gets one)."""
    if device != "cpu":
        return f"runs on {device}: the cross-check covers CPU targets"
    if runtime not in PLAIN_ENGINES:
        return f"no independent peer for {runtime}"
    return None


def start_peer(
    runtime: str,
    model: Path,
    threads: int,
    shape: tuple[int, ...],
    policy_env: dict[str, str],
    idle_sleep: bool,
) -> tuple[Peer, Peer | None]:
    """The peer for `runtime` on `model` (litert-benchmark if installed, else a plain loop),
    and the vendor's program shown beside it where it times something else (benchmark_app)."""
    env = peer_environment(policy_env)
    if runtime == "litert" and (tool := program("litert-benchmark")):
        return LiteRtBenchmark(tool, model, threads, env), None
    vendor = None
    if runtime.startswith("openvino") and (tool := program("benchmark_app")):
        precision = "bf16" if runtime.endswith("bf16") else "f32"
        vendor = BenchmarkApp(tool, model, threads, shape, env, precision)
    return PlainLoop(PLAIN_ENGINES[runtime], model, threads, shape, env, idle_sleep), vendor
