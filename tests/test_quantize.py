"""int8 static quantization: keeps a trained model's accuracy; falls back through the CPU's schemes,
then the fewest most sensitive layers in fp32; a model outside the limit is recorded, never
silently accepted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.config import DeploySection
from resnest_bench.harness.data import load_dataset, normalize
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.export import int8 as quantize_module
from resnest_bench.harness.export.gate import GateData, top1_percent
from resnest_bench.harness.export.int8 import quantize_int8
from resnest_bench.harness.export.int8_schemes import (
    U8S8,
    U8S8_REDUCED,
    U8U8,
    schemes_for,
    schemes_for_this_cpu,
)
from resnest_bench.harness.export.onnx import export_onnx
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


def _quantize(trained, out: Path, *, schemes=None, mixed_precision=True, **gate):
    data, fp32 = trained
    gated = _gate(data, **gate)
    return quantize_int8(fp32, out, gated, schemes=schemes, mixed_precision=mixed_precision)


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


def _last_conv(path: Path) -> str:
    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"][-1]


def _int8_weights(path: Path, node_name: str) -> bool:
    """Whether a node's weight (input 1) comes through a DequantizeLinear: it is int8."""
    graph = onnx.load(str(path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    node = next(n for n in graph.node if n.name == node_name)
    return producer.get(node.input[1]) == "DequantizeLinear"


def test_mixed_precision_keeps_the_one_layer_that_loses_accuracy_fp32(
    trained, tmp_path, monkeypatch
):
    """Simulate a model whose last conv, quantized, costs accuracy: the ranking must find that
    one layer among all, the gate keep it (only it) fp32, and stop there."""
    sensitive = _last_conv(trained[1])  # last in graph order: not where ties would land
    real = quantize_module._ort_session

    def session(path, threads):
        run = real(path, threads)
        if not _int8_weights(Path(path), sensitive):
            return run
        return lambda x: np.roll(run(x), 1, axis=1)

    monkeypatch.setattr(quantize_module, "_ort_session", session)
    schemes = ([U8S8_REDUCED, U8U8], "test")
    result = _quantize(trained, tmp_path / "m.int8.onnx", schemes=schemes)
    assert [a.variant for a in result.attempts] == [
        "u8s8-reduce-range",
        "u8u8",
        "u8s8-reduce-range+1-most-sensitive-fp32",
    ]
    assert [a.accepted for a in result.attempts] == [False, False, True]
    assert result.excluded_nodes == [sensitive] and result.attempts[2].kept_fp32 == [sensitive]
    assert not _int8_weights(tmp_path / result.path, sensitive)
    assert all(a.size_bytes > 0 and a.seconds > 0 for a in result.attempts)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.int8.onnx"]


@pytest.mark.slow
def test_no_variant_passes_is_built_and_rejected(trained, tmp_path):
    result = _quantize(trained, tmp_path / "m.int8.onnx", max_drop_pts=-100.0)
    offered = schemes_for_this_cpu()[0]
    ranked = [a.variant for a in result.attempts][len(offered) :]
    # resnest-tiny's 26 weighted layers: up to half of them kept fp32, fine steps first
    assert ranked == [f"{offered[0].name}+{k}-most-sensitive-fp32" for k in (1, 2, 3, 4, 6, 9, 13)]
    assert [len(a.kept_fp32) for a in result.attempts[len(offered) :]] == [1, 2, 3, 4, 6, 9, 13]
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
    assert not (tmp_path / "out.onnx").exists()


def _irs(folder: Path) -> tuple[Path, Path]:
    return folder / "model.openvino.xml", folder / "model.int8.openvino.xml"


def test_openvino_ir_matches_and_its_int8_passes_the_same_gate(trained, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from resnest_bench.harness.export.openvino import build_openvino

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


@pytest.mark.slow
def test_openvino_keeps_ranked_layers_fp32_by_their_names_in_the_ir(trained, tmp_path):
    pytest.importorskip("nncf")
    import openvino as ov

    from resnest_bench.harness.export.openvino import build_openvino

    data, fp32 = trained
    # nothing passes: every ranked variant is tried and recorded, the least lossy one kept
    record = build_openvino(
        fp32, *_irs(tmp_path), _gate(data, calibration_images=64, max_drop_pts=-100)
    )
    attempts = record.int8.attempts
    assert [a.variant for a in attempts] == ["nncf"] + [
        f"nncf+{k}-most-sensitive-fp32" for k in (1, 2, 3, 4, 6, 9, 13)
    ]
    assert record.int8.rejected
    # every kept layer is a conv of the IR, named as the IR names it (ignored_scope takes it)
    model = ov.Core().read_model(str(tmp_path / record.fp32_path))
    kinds = {op.get_friendly_name(): op.get_type_name() for op in model.get_ordered_ops()}
    kept = attempts[-1].kept_fp32
    assert len(kept) == 13 and {kinds[name] for name in kept} <= {"Convolution", "GroupConvolution"}
    # and really stays fp32: the 13 kept layers' fp32 weights make the file larger
    assert attempts[-1].size_bytes > attempts[0].size_bytes  # fp32 weights weigh more


def test_gate_records_a_variant_that_cannot_be_built_and_tries_the_next(tmp_path):
    """A candidate whose build or load raises is an attempt with its one-line error, not the
    end of the ladder; when none can be scored the gate says why in one line."""
    from resnest_bench.harness.export.gate import Candidate, run_gate

    def build(name: str, fails: bool):
        def make() -> Path:
            if fails:
                raise RuntimeError(f"{name}: unsupported scale value (inf)\nmore")
            (tmp_path / name).write_bytes(b"q" * 10)
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
    assert second.size_bytes == 10 and second.seconds >= 0 and first.size_bytes is None
    with pytest.raises(BenchError, match=r"^no int8 variant could be built and run: RuntimeError"):
        run_gate([build("a", True)], lambda p: 0.0, fp32_top1=90.0, max_drop_pts=1.0)
