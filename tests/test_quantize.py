"""int8 static quantization: keeps a trained model's accuracy, retries with attention in fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.build import int8 as quantize_module
from resnest_bench.harness.build.int8 import (
    Int8Scheme,
    attention_nodes,
    quantize_int8,
    top1_percent,
)
from resnest_bench.harness.build.onnx import export_onnx
from resnest_bench.harness.config import DeploySection
from resnest_bench.harness.data import load_dataset, normalize
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.runtimes import get_runtime

FAST = 128  # calibration images


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """resnest-tiny after 40 plain-SGD steps on learnable synthetic 16x16 images, as ONNX."""
    folder = tmp_path_factory.mktemp("int8")
    data = load_dataset(
        "synthetic", root=folder, train_subset=1024, test_subset=256, image_size=16, seed=0
    )
    torch.manual_seed(0)
    model = models.create_model("resnest-tiny")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    x, y = normalize(data.train.images, data.mean, data.std), data.train.labels
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(40):
        idx = torch.randint(0, len(x), (32,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test_x = normalize(data.test.images, data.mean, data.std)
    export_onnx(model, folder / "model.onnx", test_x[:64], atol=1e-3, exporter="torchscript")
    return data, folder / "model.onnx"


def _quantize(trained, out: Path, **kwargs):
    data, fp32 = trained
    return quantize_int8(
        fp32,
        out,
        calibration=data.train,
        calibration_images=kwargs.pop("calibration_images", FAST),
        heldout=data.test,
        mean=data.mean,
        std=data.std,
        max_drop_pts=kwargs.pop("max_drop_pts", 1.0),
        **kwargs,
    )


def _softmax_inputs_quantized(path: str | Path) -> bool:
    graph = onnx.load(str(path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    gates = [n for n in graph.node if n.op_type == "Softmax"]
    assert gates
    return all(producer.get(g.input[0]) == "DequantizeLinear" for g in gates)


def test_int8_keeps_accuracy(trained, tmp_path):
    path = tmp_path / "m.int8.onnx"
    result = _quantize(trained, path, max_drop_pts=1.0)
    assert result.path == path.name  # records name files within the artifacts folder
    assert result.fp32_top1 > 50.0, "the fixture must learn, or the accuracy check proves nothing"
    assert result.drop_pts <= 1.0
    assert result.variant == "full" and len(result.attempts) == 1
    assert result.calibration_images == 128 and result.heldout_images == 256
    # It really is int8: integer weights, quantized attention, a quarter-ish of the fp32 size.
    assert _softmax_inputs_quantized(path)
    graph = onnx.load(path).graph
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    assert result.size_bytes < 0.6 * trained[1].stat().st_size
    runtime = get_runtime("ort-cpu")
    runtime.load(path)
    data = trained[0]
    logits = runtime.run(normalize(data.test.images, data.mean, data.std).numpy())
    assert top1_percent(logits, data.test.labels.numpy()) == pytest.approx(result.int8_top1)


def test_attention_nodes_cover_the_split_attention_path(trained):
    names = attention_nodes(trained[1])
    graph = onnx.load(str(trained[1])).graph
    ops = {n.name: n.op_type for n in graph.node}
    chosen = [ops[name] for name in names]
    config = models.get_config("resnest-tiny")
    stages = len(config.layers)
    # one gate and pool per block; the attention is applied to each radix split with its own Mul
    for op, count in (("Softmax", stages), ("ReduceMean", stages), ("Mul", stages * config.radix)):
        assert chosen.count(op) == count
    assert chosen.count("Conv") == 2 * stages  # fc1 and fc2 of every block, no main-path conv


def test_retry_keeps_attention_fp32_when_full_int8_loses_accuracy(trained, tmp_path, monkeypatch):
    """Simulate a model whose quantized attention costs accuracy: only the retry can ship."""
    real = quantize_module._ort_logits

    def logits(path, images, threads):
        out = real(path, images, threads)
        return np.roll(out, 1, axis=1) if _softmax_inputs_quantized(path) else out

    monkeypatch.setattr(quantize_module, "_ort_logits", logits)
    result = _quantize(trained, tmp_path / "m.int8.onnx", max_drop_pts=1.0)
    assert [a.variant for a in result.attempts] == ["full", "attention-fp32"]
    assert [a.accepted for a in result.attempts] == [False, True]
    assert result.variant == "attention-fp32" and result.drop_pts <= 1.0
    assert set(result.excluded_nodes) == set(attention_nodes(trained[1]))
    assert not _softmax_inputs_quantized(tmp_path / result.path)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.int8.onnx"]


def test_no_variant_passes_ships_the_best_flagged(trained, tmp_path):
    result = _quantize(trained, tmp_path / "m.int8.onnx", max_drop_pts=-100.0)
    assert [a.variant for a in result.attempts] == ["full", "attention-fp32"]
    assert not result.within_limit and not any(a.accepted for a in result.attempts)
    assert result.drop_pts == min(a.drop_pts for a in result.attempts)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.int8.onnx"]


def test_no_variant_passes_strict_raises_and_writes_nothing(trained, tmp_path):
    with pytest.raises(BenchError, match=r"tried full .*attention-fp32"):
        _quantize(trained, tmp_path / "m.int8.onnx", max_drop_pts=-100.0, strict=True)
    assert list(tmp_path.iterdir()) == []


def test_int8_activations_variant(trained, tmp_path):
    result = _quantize(
        trained, tmp_path / "s8.onnx", scheme=Int8Scheme(activations="int8"), calibration_images=64
    )
    assert result.settings.activations == "int8" and result.drop_pts <= 1.0
    assert result.settings.calibration_images == result.calibration_images == 64


def test_calibration_images_must_be_positive():
    with pytest.raises(ValueError, match="calibration_images"):
        DeploySection(calibration_images=0)


def test_bad_inputs(trained, tmp_path):
    with pytest.raises(BenchError, match="not found"):
        _quantize((trained[0], tmp_path / "missing.onnx"), tmp_path / "out.onnx")
    with pytest.raises(BenchError, match="unknown int8 variant"):
        _quantize(trained, tmp_path / "out.onnx", variants=("dynamic",))
    assert not (tmp_path / "out.onnx").exists()
