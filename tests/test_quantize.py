"""int8 static quantization: keeps a trained model's accuracy; falls back through the CPU's schemes,
then fp32 islands; a model outside the limit is recorded, never silently accepted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.build import int8 as quantize_module
from resnest_bench.harness.build.fp32_nodes import attention_nodes, first_conv_node
from resnest_bench.harness.build.gate import KEEP_FP32, GateData, top1_percent
from resnest_bench.harness.build.int8 import quantize_int8
from resnest_bench.harness.build.int8_schemes import (
    U8S8,
    U8S8_REDUCED,
    U8U8,
    schemes_for,
    schemes_for_this_cpu,
)
from resnest_bench.harness.build.onnx import export_onnx
from resnest_bench.harness.config import DeploySection
from resnest_bench.harness.data import load_dataset, normalize
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.runtimes import get_runtime
from tests.training import train_steps

FAST = 128  # calibration images


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """resnest-tiny after 40 plain-SGD steps on learnable synthetic 16x16 images, as ONNX."""
    folder = tmp_path_factory.mktemp("int8")
    data = load_dataset(
        "synthetic", root=folder, train_subset=1024, test_subset=256, image_size=16, seed=0
    )
    torch.manual_seed(0)
    model = train_steps(models.create_model("resnest-tiny"), data, steps=40, batch=32, lr=0.02)
    test_x = normalize(data.test.images, data.mean, data.std)
    export_onnx(model, folder / "model.onnx", test_x[:64], atol=1e-3, exporter="torchscript")
    return data, folder / "model.onnx"


def _gate(data, **overrides) -> GateData:
    settings = {"calibration_images": FAST, "max_drop_pts": 1.0, **overrides}
    return GateData(
        calibration=data.train, heldout=data.test, mean=data.mean, std=data.std, **settings
    )


def _quantize(trained, out: Path, *, schemes=None, keep_fp32=KEEP_FP32, **gate):
    data, fp32 = trained
    return quantize_int8(fp32, out, _gate(data, **gate), schemes=schemes, keep_fp32=keep_fp32)


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
    assert result.variant == schemes_for_this_cpu()[0][0].name and len(result.attempts) == 1
    assert result.settings.schemes == schemes_for_this_cpu()[0]
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


def test_fallbacks_end_with_attention_fp32_when_quantized_attention_loses(
    trained, tmp_path, monkeypatch
):
    """Simulate a model whose quantized attention costs accuracy: only that fallback can ship."""
    real = quantize_module._ort_session

    def session(path, threads):
        run = real(path, threads)
        if not _softmax_inputs_quantized(path):
            return run
        return lambda x: np.roll(run(x), 1, axis=1)

    monkeypatch.setattr(quantize_module, "_ort_session", session)
    schemes = ([U8S8_REDUCED, U8U8], "test")
    result = _quantize(trained, tmp_path / "m.int8.onnx", schemes=schemes)
    assert [a.variant for a in result.attempts] == [
        "u8s8-reduce-range",
        "u8u8",
        "u8s8-reduce-range+first-conv-fp32",
        "u8u8+first-conv-fp32",
        "u8s8-reduce-range+attention-fp32",
    ]
    assert [a.accepted for a in result.attempts] == [False] * 4 + [True]
    assert result.variant == "u8s8-reduce-range+attention-fp32" and result.drop_pts <= 1.0
    first_conv = first_conv_node(trained[1])
    assert set(result.excluded_nodes) == set(first_conv + attention_nodes(trained[1]))
    assert not _softmax_inputs_quantized(tmp_path / result.path)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.int8.onnx"]


def test_no_variant_passes_is_built_and_rejected(trained, tmp_path):
    result = _quantize(trained, tmp_path / "m.int8.onnx", max_drop_pts=-100.0)
    assert len(result.attempts) == 3 * len(schemes_for_this_cpu()[0])
    assert not result.within_limit and not any(a.accepted for a in result.attempts)
    assert result.rejected and not result.allowed_loss
    assert result.drop_pts == min(a.drop_pts for a in result.attempts)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.int8.onnx"]  # measured, reported


def test_allow_loss_ships_it_flagged(trained, tmp_path):
    schemes = ([U8U8], "test")
    result = _quantize(
        trained, tmp_path / "m.onnx", max_drop_pts=-100.0, allow_loss=True, schemes=schemes
    )
    assert result.allowed_loss and not result.within_limit and not result.rejected


def test_u8u8_scheme_stores_uint8_weights(trained, tmp_path):
    result = _quantize(
        trained, tmp_path / "u8.onnx", schemes=([U8U8], "test"), calibration_images=64
    )
    assert result.variant == "u8u8" and result.drop_pts <= 1.0
    assert result.settings.calibration_images == result.calibration_images == 64
    graph = onnx.load(tmp_path / "u8.onnx").graph
    conv_weights = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    dequantized = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    stored = {t.name: t.data_type for t in graph.initializer}
    types = {stored[dequantized[w]] for w in conv_weights if w in dequantized}
    assert types == {onnx.TensorProto.UINT8}


@pytest.mark.parametrize(
    ("flags", "machine", "first"),
    [
        (["avx2"], "x86_64", "u8s8-reduce-range"),  # AMD Zen 3, Intel Haswell: no VNNI
        (["avx2", "avx512f"], "x86_64", "u8s8-reduce-range"),  # Skylake-SP: AVX-512, no VNNI
        (["avx2", "avx512f", "avx512_vnni"], "x86_64", "u8s8"),  # Cascade Lake and later
        (["avx2", "avx_vnni"], "x86_64", "u8s8"),  # Alder Lake, Zen 5 (AVX-VNNI)
        (["neon", "asimddp"], "aarch64", "u8s8"),
    ],
)
def test_scheme_follows_the_instruction_set(flags, machine, first):
    schemes, reason = schemes_for(flags, machine)
    assert schemes[0].name == first
    assert len({s.name for s in schemes}) == len(schemes) >= 2
    assert reason
    if first == "u8s8-reduce-range":
        assert U8S8 not in schemes and "VPMADDUBSW" in reason


def test_calibration_images_must_be_positive():
    with pytest.raises(ValueError, match="calibration_images"):
        DeploySection(calibration_images=0)


def test_bad_inputs(trained, tmp_path):
    with pytest.raises(BenchError, match="not found"):
        _quantize((trained[0], tmp_path / "missing.onnx"), tmp_path / "out.onnx")
    with pytest.raises(BenchError, match="unknown int8 exclusion"):
        _quantize(trained, tmp_path / "out.onnx", keep_fp32=("dynamic",))
    assert not (tmp_path / "out.onnx").exists()


def _irs(folder: Path) -> tuple[Path, Path]:
    return folder / "model.openvino.xml", folder / "model.int8.openvino.xml"


def test_openvino_ir_matches_and_its_int8_passes_the_same_gate(trained, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from resnest_bench.harness.build.openvino import build_openvino

    data, fp32 = trained
    record = build_openvino(fp32, *_irs(tmp_path), _gate(data))
    ort = get_runtime("ort-cpu")
    ort.load(fp32)
    openvino = get_runtime("openvino")
    openvino.load(tmp_path / record.fp32_path)
    x = normalize(data.test.images, data.mean, data.std).numpy()
    assert np.abs(openvino.run(x) - ort.run(x)).max() < 1e-4  # the same graph, fp32 both
    int8 = record.int8
    assert int8.within_limit and int8.drop_pts <= 1.0 and int8.heldout_images == len(data.test)
    weights = {p.name: p.stat().st_size for p in tmp_path.glob("*.bin")}
    assert weights["model.int8.openvino.bin"] < 0.4 * weights["model.openvino.bin"]  # int8 weights
    assert int8.size_bytes > weights["model.int8.openvino.bin"]  # the .bin counts with the .xml
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.int8.openvino.bin",
        "model.int8.openvino.xml",
        "model.openvino.bin",
        "model.openvino.xml",
    ]


def test_openvino_fallback_names_reach_the_ir(trained, tmp_path):
    pytest.importorskip("nncf")
    from resnest_bench.harness.build.openvino import build_openvino

    data, fp32 = trained
    # nothing passes: every fallback is tried and recorded
    record = build_openvino(
        fp32, *_irs(tmp_path), _gate(data, calibration_images=64, max_drop_pts=-100)
    )
    attempts = record.int8.attempts
    assert [a.variant for a in attempts] == ["nncf", "nncf+first-conv-fp32", "nncf+attention-fp32"]
    assert attempts[0].excluded_nodes == 0
    assert attempts[1].excluded_nodes == 1  # the stem conv, found by name in the IR
    assert attempts[2].excluded_nodes > attempts[1].excluded_nodes
    assert record.int8.rejected


def test_gate_records_a_variant_that_cannot_be_built_and_tries_the_next(tmp_path):
    """A candidate whose build or load raises is an attempt with its one-line error, not the
    end of the ladder; when none can be scored the gate says why in one line."""
    from resnest_bench.harness.build.gate import Candidate, run_gate

    def build(name: str, fails: bool):
        def make() -> Path:
            if fails:
                raise RuntimeError(f"{name}: unsupported scale value (inf)\nmore")
            return tmp_path / name

        return Candidate(name, (), make)

    scores = {"b": 90.0}
    outcome = run_gate(
        [build("a", True), build("b", False)],
        lambda p: scores[p.name],
        fp32_top1=90.5,
        max_drop_pts=1.0,
    )
    first, second = outcome.attempts
    assert first.error == "RuntimeError: a: unsupported scale value (inf)" and first.top1 is None
    assert second.accepted and outcome.best.variant == "b" and outcome.path == tmp_path / "b"
    with pytest.raises(BenchError, match=r"^no int8 variant could be built and run: RuntimeError"):
        run_gate([build("a", True)], lambda p: 0.0, fp32_top1=90.0, max_drop_pts=1.0)
