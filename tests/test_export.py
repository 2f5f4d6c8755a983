"""ONNX export: both exporters reproduce PyTorch, bad model files fail with a clear BenchError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.export.onnx import (
    check_input_fits,
    export_onnx,
    load_onnx,
    parity_problem,
)
from resnest_bench.harness.export.ort_format import convert_to_ort
from resnest_bench.harness.results.deployment import Parity
from resnest_bench.harness.runtimes import get_runtime

IMAGE = 16  # the CIFAR-stem tiny model is size-agnostic; 16x16 keeps the tests fast


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.create_model("resnest-tiny").eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(40, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module", params=["dynamo", "torchscript"])
def exported(request, model, images, tmp_path_factory):
    """(path of the ONNX file, its export record)."""
    path = tmp_path_factory.mktemp(request.param) / "model.onnx"
    record = export_onnx(model, path, images, exporter=request.param, atol=1e-4, rtol=0.0)
    return path, record


def test_export_matches_pytorch(exported, images):
    path, record = exported
    assert record.path == path.name  # records name files within the artifacts folder
    assert record.parity.images == len(images)
    assert record.parity.max_abs_diff < 1e-4
    assert record.parity.top1_agreement == 1.0
    assert record.opset >= 17 and record.size_bytes > 0
    assert record.fallback_reason is None
    assert list(record.model_dump()) == [
        "path",
        "exporter",
        "opset",
        "size_bytes",
        "parity",
        "fallback_reason",
    ]


def test_exported_file_is_readable_like_every_other_artifact(exported):
    """mkstemp's 0600 used to survive into model.onnx and model.int8.ort (issue 25)."""
    import os
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(exported[0].stat().st_mode) == 0o666 & ~mask  # 0644 under umask 022


def test_export_has_dynamic_batch(exported, model, images):
    runtime = get_runtime("ort-cpu")
    runtime.load(exported[0])
    for batch in (1, 7):
        got = runtime.run(images[:batch].numpy())
        with torch.inference_mode():
            want = model(images[:batch]).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_mismatch_raises_and_leaves_no_file(model, images, tmp_path):
    target = tmp_path / "model.onnx"
    with pytest.raises(BenchError, match="does not match PyTorch"):
        export_onnx(model, target, images, exporter="torchscript", atol=-1.0, rtol=0.0)
    assert list(tmp_path.iterdir()) == []


def test_unknown_exporter(model, images, tmp_path):
    with pytest.raises(BenchError, match="unknown ONNX exporter"):
        export_onnx(model, tmp_path / "m.onnx", images, atol=1e-3, exporter="caffe2")  # type: ignore


def test_bad_onnx(tmp_path):
    with pytest.raises(BenchError, match="not found"):
        load_onnx(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(BenchError, match="corrupt"):
        load_onnx(corrupt)
    with pytest.raises(BenchError, match="corrupt"):
        get_runtime("ort-cpu").load(corrupt)


def test_input_shape_must_fit_the_data(exported):
    check_input_fits(exported[0], (3, IMAGE, IMAGE))
    with pytest.raises(BenchError, match=r"expects input \[N, 3, 16, 16\].*3x32x32"):
        check_input_fits(exported[0], (3, 32, 32))


def test_ort_format_runs_like_onnx(exported, images, tmp_path):
    ort_file = convert_to_ort(exported[0], tmp_path / "model.ort")
    assert ort_file.size_bytes == (tmp_path / "model.ort").stat().st_size
    assert (ort_file.path, ort_file.source) == ("model.ort", "model.onnx")
    a, b = get_runtime("ort-cpu"), get_runtime("ort-cpu")
    a.load(exported[0])
    b.load(tmp_path / ort_file.path)
    np.testing.assert_allclose(a.run(images.numpy()), b.run(images.numpy()), atol=1e-5)


def test_tolerance_scales_with_the_logits():
    big = Parity(images=8, max_abs_diff=2e-3, reference_absmax=5000.0, top1_agreement=1.0)
    assert parity_problem(big, atol=1e-3, rtol=1e-5) is None
    assert "max |logit diff|" in parity_problem(big, atol=1e-3, rtol=0.0)
    split = Parity(images=8, max_abs_diff=0.0, reference_absmax=1.0, top1_agreement=0.5)
    assert "top-1 agreement 50.00%" in parity_problem(split, atol=1e-3, min_agreement=0.99)
