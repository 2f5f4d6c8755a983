"""Runtime registry and interface: names resolve or fail clearly; runtimes agree with each other."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.artifacts import ARTIFACTS
from resnest_bench.harness.checkpoints import save_torch_artifact
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.export.onnx import export_onnx
from resnest_bench.harness.host.cgroups import usable_cpus
from resnest_bench.harness.measure import REFERENCE, select_targets
from resnest_bench.harness.runtimes import RUNTIMES, Runtime, get_runtime, runtime_class
from resnest_bench.harness.runtimes import torch_compile as torch_compile_module
from resnest_bench.harness.runtimes.ort import OrtCuda


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.manual_seed(0)
    model = models.create_model("resnest-tiny").eval()
    folder = tmp_path_factory.mktemp("rt")
    images = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    save_torch_artifact(model, folder / "model.pt")
    export_onnx(model, folder / "model.onnx", images, atol=1e-3, exporter="torchscript")
    return folder, images.numpy()


def test_registry_lists_every_runtime():
    assert set(RUNTIMES) >= {"torch-eager", "torch-compile", "ort-cpu", "ort-cuda", "ort-tensorrt"}
    for name, cls in RUNTIMES.items():
        assert issubclass(cls, Runtime) and cls.name == name
        assert cls.artifacts and set(cls.artifacts) <= set(ARTIFACTS)


def test_targets_come_from_the_artifacts_each_runtime_runs():
    assert [(t.name, t.kind) for t in select_targets(("torch-eager", "ort-cpu"))] == [
        ("torch-eager:fp32", "state_dict"),
        ("ort-cpu:fp32", "onnx_fp32"),
        ("ort-cpu:int8", "onnx_int8"),
        ("ort-cpu:int8-ort-format", "ort"),
    ]
    every = select_targets(None)
    assert every[0].name == REFERENCE
    assert len(every) == sum(len(cls.artifacts) for cls in RUNTIMES.values())


def test_registry_imports_neither_torch_nor_onnxruntime():
    """Config validation imports the registry to check runtime names; that must stay cheap."""
    code = (
        "import sys; import resnest_bench.harness.runtimes; "
        "print(sorted({'torch', 'onnxruntime'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_runtime_names_the_known_ones():
    with pytest.raises(BenchError, match=r"unknown runtime 'caffe2'; choose one of .*ort-cpu"):
        get_runtime("caffe2")
    with pytest.raises(BenchError, match="unknown runtime"):
        runtime_class("")


def test_missing_provider_is_reported_not_crashed(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(BenchError, match=r"'ort-cuda' is not available: .*CUDAExecutionProvider"):
        get_runtime("ort-cuda")
    with pytest.raises(BenchError, match="TensorrtExecutionProvider"):
        get_runtime("ort-tensorrt")


def test_a_listed_provider_that_cannot_run_a_session_is_unavailable(monkeypatch):
    """onnxruntime-gpu lists TensorRT without its libraries; a trial session tells."""
    import onnxruntime

    listed = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    for name, provider in (("ort-tensorrt", "Tensorrt"), ("ort-cuda", "CUDA")):
        with pytest.raises(BenchError, match=rf"lists {provider}ExecutionProvider, but its lib"):
            get_runtime(name)
    assert get_runtime("ort-cpu") is not None


def test_torch_compile_needs_a_compiler(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(torch_compile_module.shutil, "which", lambda _: None)
    with pytest.raises(BenchError, match="C\\+\\+ compiler"):
        get_runtime("torch-compile")


def test_threads_default_to_usable_cpus():
    assert get_runtime("ort-cpu").threads == usable_cpus()
    assert get_runtime("torch-eager", threads=1).threads == 1
    with pytest.raises(BenchError, match="threads"):
        get_runtime("ort-cpu", threads=0)


def test_eager_and_ort_agree(files):
    folder, images = files
    eager, ort = get_runtime("torch-eager", threads=1), get_runtime("ort-cpu", threads=1)
    eager.load(folder / "model.pt")
    ort.load(folder / "model.onnx")
    np.testing.assert_allclose(eager.run(images), ort.run(images), atol=1e-4)


def test_run_before_load_and_bad_batches(files):
    folder, images = files
    runtime = get_runtime("ort-cpu")
    with pytest.raises(BenchError, match="before load"):
        runtime.run(images)
    runtime.load(folder / "model.onnx")
    with pytest.raises(BenchError, match="float32 NCHW"):
        runtime.run(images.astype(np.float64))
    with pytest.raises(BenchError, match=r"takes \[N, 3, 16, 16\] but got a batch of shape"):
        runtime.run(np.zeros((1, 3, 20, 20), np.float32))


class BoundOnCpu(OrtCuda):
    """ort-cuda's IOBinding path with host memory standing in for the GPU's: the same staging,
    binding by pointer and fetch, on a machine without one."""

    name = "ort-bound-cpu"  # not registered
    providers = ("CPUExecutionProvider",)
    binding_device = "cpu"

    @classmethod
    def placement(cls, device: str) -> str:
        return "cpu"


def test_ort_gpu_binds_staged_slices_and_keeps_outputs_until_fetched(files):
    import onnxruntime

    folder, images = files
    plain, bound = get_runtime("ort-cpu", threads=1), BoundOnCpu(threads=1)
    plain.load(folder / "model.onnx")
    bound.load(folder / "model.onnx")
    staged = bound.stage(images)
    assert isinstance(staged, torch.Tensor)
    output = bound.forward(staged[3:5])  # a slice: its own pointer offset and shape
    assert isinstance(output, onnxruntime.OrtValue)  # not copied back until fetch
    np.testing.assert_allclose(bound.fetch(output), plain.run(images[3:5]), atol=1e-6)
    np.testing.assert_allclose(bound.run(images), plain.run(images), atol=1e-6)
    with pytest.raises(BenchError, match=r"takes \[N, 3, 16, 16\] but got a batch of shape"):
        bound.run(np.zeros((1, 3, 20, 20), np.float32))


@pytest.mark.parametrize("name", ["torch-eager", "ort-cpu"])
def test_missing_artifact(name, tmp_path):
    with pytest.raises(BenchError, match="model file not found"):
        get_runtime(name).load(tmp_path / "nothing")


@pytest.mark.slow  # inductor codegen + a C++ build: ~10-30 s even for the tiny model
def test_torch_compile_matches_eager(files):
    folder, images = files
    eager, compiled = get_runtime("torch-eager"), get_runtime("torch-compile")
    eager.load(folder / "model.pt")
    compiled.load(folder / "model.pt")
    np.testing.assert_allclose(compiled.run(images), eager.run(images), atol=1e-4)


def test_a_new_runtime_is_one_module(files):
    """A runtime on an existing artifact kind needs its class and nothing else: registered,
    the suite accepts its name, it gets a target per kind (labelled from the artifact table),
    its file is built, plan lists it, and it runs. Here: onnx's own reference evaluator."""
    from resnest_bench.harness.config import DeploySection, load_suite
    from resnest_bench.harness.formats import formats_to_build
    from resnest_bench.harness.gpu.plan import make_plan
    from resnest_bench.harness.runtimes.base import register

    class OnnxReference(Runtime):
        name = "onnx-reference"
        artifacts = ("onnx_fp32",)

        def _load(self, path):
            from onnx.reference import ReferenceEvaluator

            self.evaluator = ReferenceEvaluator(str(path))

        def _run(self, batch):
            return self.evaluator.run(None, {self.evaluator.input_names[0]: batch})[0]

    register(OnnxReference)
    try:
        section = DeploySection(runtimes=("torch-eager", "onnx-reference"))
        assert [(t.name, t.runtime, t.kind) for t in select_targets(section.runtimes)] == [
            ("torch-eager:fp32", "torch-eager", "state_dict"),
            ("onnx-reference:fp32", "onnx-reference", "onnx_fp32"),
        ]
        assert "onnx" in formats_to_build(section)
        suite, _ = load_suite("cpu-runtime", overrides={"deploy": {"runtimes": ["onnx-reference"]}})
        plan = make_plan(suite)
        assert [(t.runtime, t.run) for t in plan.targets] == [("onnx-reference", True)]
        folder, images = files
        runtime = OnnxReference(threads=1)
        runtime.load(folder / "model.onnx")
        eager = get_runtime("torch-eager", threads=1)
        eager.load(folder / "model.pt")
        np.testing.assert_allclose(runtime.run(images), eager.run(images), atol=1e-3)
    finally:
        RUNTIMES.pop("onnx-reference", None)
