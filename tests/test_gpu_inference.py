"""GPU-resident inference, proven on the CPU: the suite's device reaches every measuring worker
and runtime (ONNX Runtime's GPU providers get its index), timed calls run on staged inputs
between two syncs, and a throughput batch that runs out of memory keeps the smaller batches'
figures instead of failing the target."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from types import SimpleNamespace

import onnxruntime
import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.checkpoints import save_torch_artifact
from resnest_bench.harness.config import DeploySection, TimingSection
from resnest_bench.harness.data import load_dataset
from resnest_bench.harness.measure import target as target_module
from resnest_bench.harness.measure.target import (
    DEVICE_POOL,
    InProcess,
    Job,
    OutOfMemory,
    TargetFailed,
    Worker,
    serve,
)
from resnest_bench.harness.report.provenance import host_lines
from resnest_bench.harness.results.deployment import (
    ArtifactsRecord,
    Demo,
    DeployEnvironment,
    Deployment,
    ThreadPolicy,
)
from resnest_bench.harness.results.environment import CgroupLimits
from resnest_bench.harness.runtimes import get_runtime, runtime_class
from resnest_bench.harness.runtimes.ort import OrtCuda, OrtTensorRT
from resnest_bench.harness.runtimes.torch_eager import TorchEager
from tests.measuring import measure

TIMING = TimingSection(warmup=1, min_iters=3, min_seconds=0.0)
POLICY = ThreadPolicy(threads=1, ort_spinning=False, omp_wait_policy="PASSIVE", reason="test")


@pytest.fixture(scope="module")
def data():
    return load_dataset(
        "synthetic", root=Path("unused"), train_subset=8, test_subset=40, image_size=16
    )


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, data) -> Path:
    torch.manual_seed(0)
    model = models.create_model("resnest-tiny", num_classes=data.num_classes).eval()
    path = tmp_path_factory.mktemp("gpu") / "model.pt"
    save_torch_artifact(model, path)
    return path


def _job(data, path: Path, device: str = "cpu", runtime: str = "torch-eager") -> Job:
    return Job(
        target=f"{runtime}:fp32",
        runtime=runtime,
        artifact="state_dict",
        path=path,
        test=data.test,
        mean=data.mean,
        std=data.std,
        policy=POLICY,
        warmup=1,
        device=device,
    )


def test_pytorch_follows_the_suite_device_and_cpu_runtimes_stay_on_the_cpu():
    assert get_runtime("torch-eager", device="cuda:1").device == "cuda:1"
    assert runtime_class("torch-compile").placement("cuda:1") == "cuda:1"
    assert get_runtime("ort-cpu", device="cuda:1").device == "cpu"
    assert runtime_class("openvino").placement("cuda:1") == "cpu"
    assert OrtCuda.placement("cuda:2") == "cuda:2"
    assert OrtCuda.placement("cpu") == "cuda"  # a GPU runtime asked for on a CPU suite


CUDA_OPTIONS = {"use_tf32": 0}
CPU = "CPUExecutionProvider"


@pytest.mark.parametrize(
    ("cls", "device", "expected"),
    [
        # use_tf32=0: ORT's CUDA provider runs fp32 in TF32 on sm_80+ unless told not to
        (OrtCuda, "cuda:1", [("CUDAExecutionProvider", CUDA_OPTIONS | {"device_id": 1}), CPU]),
        (OrtCuda, "cpu", [("CUDAExecutionProvider", CUDA_OPTIONS | {"device_id": 0}), CPU]),
        (
            OrtTensorRT,
            "cuda:3",
            [
                ("TensorrtExecutionProvider", {"device_id": 3}),
                ("CUDAExecutionProvider", CUDA_OPTIONS | {"device_id": 3}),
                CPU,
            ],
        ),
    ],
)
def test_ort_gpu_sessions_open_on_the_suites_gpu(tmp_path, monkeypatch, cls, device, expected):
    opened = {}

    class Session:
        def __init__(self, path, sess_options=None, providers=None):
            opened["providers"] = providers
            self.providers = [p[0] if isinstance(p, tuple) else p for p in providers]

        def get_providers(self):
            return self.providers

        def get_inputs(self):
            return [SimpleNamespace(name="x", shape=["N", 3, 16, 16])]

        def get_outputs(self):
            return [SimpleNamespace(name="logits", shape=["N", 10])]

    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    cls(threads=1, device=device).load(model)
    assert opened["providers"] == expected


def test_measure_hands_the_suite_device_to_every_worker(tmp_path, monkeypatch, data, artifact):
    jobs: list[Job] = []

    class Recorder:
        def __init__(self, job: Job) -> None:
            jobs.append(job)

        def call(self, op, **kwargs):
            raise TargetFailed("not measured here")

        def close(self) -> None:
            pass

    monkeypatch.setattr(target_module, "InProcess", Recorder)
    record = ArtifactsRecord(files={"state_dict": artifact.name}, sizes_bytes={})
    section = DeploySection(runtimes=("torch-eager",), rounds=1, timing=TIMING)
    measure(artifact.parent, record, data, section, small_subset=2, spawn=False, device="cuda:1")
    assert [job.device for job in jobs] == ["cuda:1"]
    worker = Worker(jobs[0])  # nothing loaded yet: no GPU needed to see where it would run
    assert worker.runtime.device == "cuda:1"
    assert len(worker.pool) == min(DEVICE_POOL, len(data.test))


def test_timed_calls_run_on_staged_inputs_between_syncs(data, artifact):
    worker = Worker(_job(data, artifact))
    assert worker.load()["device"] == "cpu"
    calls = {"sync": 0, "forward": []}
    real_forward = worker.runtime.forward
    worker.runtime.sync = lambda: calls.__setitem__("sync", calls["sync"] + 1)

    def forward(staged):
        calls["forward"].append(type(staged))
        return real_forward(staged)

    worker.runtime.forward = forward
    times = worker.round(TIMING)
    assert calls["sync"] >= 2 * len(times)
    assert set(calls["forward"]) == {torch.Tensor}  # staged: no numpy->tensor copy timed
    per_image, logits = worker.accuracy(timed=3)
    assert len(per_image) == 3 and logits.shape == (len(data.test), data.num_classes)


def _oom_from(monkeypatch, batch: int) -> dict[str, int]:
    """TorchEager raises CUDA's out-of-memory error from `batch` images up; counts releases."""
    counts = {"release": 0}
    real_run = TorchEager._run

    def run(self, x):
        if len(x) >= batch:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run(self, x)

    monkeypatch.setattr(TorchEager, "_run", run)
    monkeypatch.setattr(
        TorchEager, "release", lambda self: counts.__setitem__("release", counts["release"] + 1)
    )
    return counts


def test_a_batch_that_does_not_fit_raises_out_of_memory_not_a_failure(monkeypatch, data, artifact):
    counts = _oom_from(monkeypatch, 16)
    handle = InProcess(_job(data, artifact))
    handle.call("load")
    assert len(handle.call("throughput", batch=8, timing=TIMING)) >= TIMING.min_iters
    with pytest.raises(OutOfMemory, match="batch 16: OutOfMemoryError: CUDA out of memory"):
        handle.call("throughput", batch=16, timing=TIMING)
    assert counts["release"] == 1
    assert handle.call("round", timing=TIMING)  # the target goes on


def test_the_largest_batch_that_fit_is_recorded(monkeypatch, data, artifact):
    _oom_from(monkeypatch, 16)
    record = ArtifactsRecord(files={"state_dict": artifact.name}, sizes_bytes={})
    section = DeploySection(
        runtimes=("torch-eager",), rounds=1, timing=TIMING, throughput_batches=(4, 8, 16, 32)
    )
    asked: list[int] = []
    real_throughput = Worker.throughput

    def throughput(self, batch, timing):
        asked.append(batch)
        return real_throughput(self, batch, timing)

    monkeypatch.setattr(Worker, "throughput", throughput)
    (target,), *_ = measure(artifact.parent, record, data, section, small_subset=2, spawn=False)
    assert target.status == "ok" and target.device == "cpu"
    assert set(target.throughput) == {"4", "8"}
    assert target.throughput_limit.startswith(
        "out of memory at batch 16: OutOfMemoryError: CUDA out"
    )
    assert target.throughput_limit.endswith("largest that fit: 8")
    assert asked == [4, 8, 16]  # 32 is not tried once 16 did not fit
    on_gpu = target.model_copy(update={"device": "cuda:1", "flag": None})  # a busy host flags
    shown = Deployment(
        environment=DeployEnvironment(usable_cpus=1, threads=1, cgroup=CgroupLimits()),
        artifacts=record,
        targets=[on_gpu],
        demo=Demo(index=0, label="a", classes=["a"], probs={}),
    )
    assert host_lines(shown) == [
        "- GPU-resident (inputs in GPU memory, timed between syncs): torch-eager:fp32 on cuda:1.",
        f"- torch-eager:fp32 throughput: {target.throughput_limit}.",
    ]


def test_a_spawned_worker_answers_out_of_memory_as_its_own_status(monkeypatch, data, artifact):
    class Worn:
        def __init__(self, job):
            pass

        def throughput(self, batch, timing):
            raise OutOfMemory(f"batch {batch}: CUDA out of memory")

    monkeypatch.setattr(target_module, "Worker", Worn)
    parent, child = multiprocessing.Pipe()
    parent.send(("throughput", {"batch": 64, "timing": TIMING}))
    parent.send(("stop", {}))
    serve(child, _job(data, artifact))
    assert parent.recv() == ("oom", "batch 64: CUDA out of memory")
