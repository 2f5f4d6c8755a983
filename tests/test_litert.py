"""LiteRT: the .tflite of a model trained on real digits matches PyTorch, its int8 passes the
same accuracy gate as ONNX Runtime's, XNNPACK takes the whole graph (split attention too), and
a missing runtime or converter is a skipped row with its reason; `formats` builds only what
was asked for."""

from __future__ import annotations

import collections
import importlib.util
from dataclasses import replace

import numpy as np
import pytest
import torch

from resnest_bench.harness.artifacts import ARTIFACTS, kinds_of
from resnest_bench.harness.config import DeploySection, TimingSection
from resnest_bench.harness.data import normalize
from resnest_bench.harness.data.split import stratified_subset
from resnest_bench.harness.export import build_artifacts
from resnest_bench.harness.export import onnx as build_onnx
from resnest_bench.harness.export.gate import GateData, minmax_only
from resnest_bench.harness.export.int8 import quantize_int8
from resnest_bench.harness.formats import FORMATS
from resnest_bench.harness.runtimes import get_runtime
from resnest_bench.harness.runtimes import litert as litert_runtime
from tests.measuring import measure
from tests.training import trained_on_digits

pytest.importorskip("sklearn")
LIMIT = 1.0  # top-1 points int8 may lose
needs_converter = pytest.mark.skipif(
    importlib.util.find_spec("litert_torch") is None
    or importlib.util.find_spec("ai_edge_quantizer") is None,
    reason="needs the LiteRT converter: pip install 'resnest-bench[litert-convert]'",
)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """resnest-tiny after 100 SGD steps on scikit-learn's scanned digits (16x16)."""
    return trained_on_digits(tmp_path_factory.mktemp("digits"))


def _gate(data, **overrides) -> GateData:
    settings = {"calibration_images": 128, "max_drop_pts": LIMIT, "threads": 1, **overrides}
    return GateData(
        calibration=data.train, heldout=data.test, mean=data.mean, std=data.std, **settings
    )


def _x(data) -> torch.Tensor:
    return normalize(data.test.images, data.mean, data.std)


@pytest.fixture(scope="module")
def built(digits, tmp_path_factory):
    pytest.importorskip("litert_torch")
    from resnest_bench.harness.export.litert import build_litert

    data, model = digits
    folder = tmp_path_factory.mktemp("tflite")
    paths = folder / "model.tflite", folder / "model.int8.tflite"
    return build_litert(model, _x(data)[:128], *paths, _gate(data), atol=1e-3), folder


@needs_converter
def test_fp32_matches_pytorch_and_int8_passes_the_gate(built, digits):
    record, folder = built
    data, model = digits
    print(f"tflite fp32 vs PyTorch: max |logit diff| {record.parity.max_abs_diff:.2e}")
    assert record.parity.images == 128 and record.parity.max_abs_diff < 1e-4
    assert record.parity.top1_agreement == 1.0
    runtime = get_runtime("litert", threads=1)
    runtime.load(folder / record.fp32_path)
    x = _x(data)[:20]
    with torch.inference_mode():
        expected = model(x).numpy()
    assert np.abs(runtime.run(x.numpy()) - expected).max() < 1e-4  # batch 20: 20 calls
    assert record.batching.startswith("static batch 1")
    int8 = record.int8
    assert record.fp32_top1 > 60.0, "the model must learn the digits, or this proves nothing"
    assert int8.within_limit and int8.drop_pts <= LIMIT and int8.variant == "static-int8"
    assert int8.heldout_images == len(data.test) and int8.calibration_images == 128
    assert int8.settings.calibration == "minmax"
    assert int8.size_bytes < 0.5 * record.fp32_size_bytes  # int8 weights
    assert sorted(p.name for p in folder.iterdir()) == ["model.int8.tflite", "model.tflite"]
    quantized = get_runtime("litert", threads=1)
    quantized.load(folder / int8.path)
    logits = quantized.run(_x(data).numpy())  # float32 in, float32 out
    assert logits.dtype == np.float32
    assert np.mean(logits.argmax(1) == data.test.labels.numpy()) * 100 == int8.int8_top1


@needs_converter
def test_xnnpack_takes_every_op_split_attention_included(built):
    from resnest_bench.harness.export.litert import _graph

    record, folder = built
    for kind, name in (("litert_fp32", "model.tflite"), ("litert_int8", "model.int8.tflite")):
        cover = record.coverage[kind]
        ops = collections.Counter(op["op_name"] for op in _graph(folder / name)[0])
        assert ops["SOFTMAX"] == 4 and ops["MEAN"] >= 4  # one split attention per block
        assert cover.delegate == "XNNPACK" and cover.total_ops == sum(ops.values())
        assert cover.delegated_ops == cover.total_ops and cover.fallback == {}, cover


@needs_converter
def test_coverage_counts_what_falls_back(built):
    """Softmax and average pooling quantized to int8 leave XNNPACK: the count shows them."""
    from resnest_bench.harness.export import litert as build_litert_module

    _, folder = built
    images = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    out = folder.parent / "all-int8.tflite"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_litert_module, "FLOAT_ONLY_OPS", ())
        build_litert_module._quantize(folder / "model.tflite", out, images, ())
    ops = collections.Counter(op["op_name"] for op in build_litert_module._graph(out)[0])
    cover = litert_runtime.xnnpack_coverage(out)
    assert cover.fallback == {"AVERAGE_POOL_2D": 6, "SOFTMAX": 4}  # 3 avd + 3 shortcut pools
    assert ops["AVERAGE_POOL_2D"] == 6 and ops["SOFTMAX"] == 4
    assert cover.delegated_ops == cover.total_ops - 10


@pytest.mark.slow
@needs_converter
def test_ranked_variants_keep_their_layers_fp32_in_the_int8_file(digits, built, tmp_path):
    """Nothing passes: every ranked variant is tried, and what the kept one keeps in fp32
    really is fp32 in the file (the quantizer's op scope ends in ";", which an anchored
    pattern never matched: every fallback once shipped the same all-int8 file)."""
    from ai_edge_litert.interpreter import Interpreter

    from resnest_bench.harness.export import litert as build_litert_module
    from resnest_bench.harness.export.litert import build_litert, weighted_layers

    _, folder = built
    layers = weighted_layers(folder / "model.tflite")
    assert len(layers) == 26  # resnest-tiny's convs and its classifier
    data, model = digits
    paths = tmp_path / "m.tflite", tmp_path / "m.int8.tflite"
    gate = _gate(data, calibration_images=32, max_drop_pts=-100)
    gate = replace(gate, heldout=stratified_subset(data.test, 64, 0))  # scored quicker
    rejected = build_litert(model, _x(data)[:8], *paths, gate, atol=1e-3)
    attempts = rejected.int8.attempts
    assert [a.variant for a in attempts] == ["static-int8"] + [
        f"static-int8+{k}-most-sensitive-fp32" for k in (1, 2, 3, 4, 6, 9, 13)
    ]
    assert [a.excluded_nodes for a in attempts] == [0, 1, 2, 3, 4, 6, 9, 13]
    assert rejected.int8.rejected
    assert attempts[-1].size_bytes > attempts[0].size_bytes  # fp32 weights weigh more
    kept = attempts[-1].kept_fp32
    assert set(kept) <= set(layers)
    out = tmp_path / "kept.tflite"
    build_litert_module._quantize(folder / "model.tflite", out, _x(data)[:16].numpy(), kept)
    dtype = {t["name"]: t["dtype"].__name__ for t in Interpreter(str(out)).get_tensor_details()}
    assert {dtype[name] for name in kept} == {"float32"}
    others = [dtype[name] for name in layers if name not in kept]
    assert others.count("int8") >= len(others) - 1  # the classifier may end in float output


@needs_converter
def test_int8_ranges_cover_every_calibration_image(digits, built):
    """Activation ranges are the min/max over all calibration images: the quantizer's default
    moving average would forget a bright first image (0.95 per image) and clip it."""
    from ai_edge_litert.interpreter import Interpreter

    from resnest_bench.harness.export import litert as build_litert_module

    _, folder = built
    data, _ = digits
    images = _x(data)[:16].numpy()
    images[0] *= 6.0  # one image far outside the others' range, seen first
    out = folder.parent / "ranges.int8.tflite"
    build_litert_module._quantize(folder / "model.tflite", out, images, ())
    interpreter = Interpreter(model_path=str(out))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    quantize = next(op for op in interpreter._get_ops_details() if op["op_name"] == "QUANTIZE")
    params = tensors[int(quantize["outputs"][0])]["quantization_parameters"]
    scale, zero = float(params["scales"][0]), int(params["zero_points"][0])
    covered = (scale * (-128 - zero), scale * (127 - zero))
    assert covered[0] <= 0.98 * images.min() and covered[1] >= 0.98 * images.max(), covered


@needs_converter
def test_max_pool_padding_gets_a_finite_int8_range(digits, tmp_path):
    """The ImageNet stem's max pool pads with -inf (PADV2): its range, and the stem conv's it
    shares, must come from the real activations, or the scale is inf and XNNPACK refuses the
    file (it did, on an inverted-digits folder)."""
    from ai_edge_litert.interpreter import Interpreter

    from resnest_bench import models
    from resnest_bench.harness.export import litert as build_litert_module

    data, _ = digits
    model = models.create_model("resnest-tiny", stem="imagenet", num_classes=10).eval()
    images = _x(data)[:8]
    fp32, int8 = tmp_path / "pool.tflite", tmp_path / "pool.int8.tflite"
    build_litert_module._convert(model, images[:1], fp32)
    build_litert_module._quantize(fp32, int8, images.numpy(), ())
    pads = [
        op
        for op in Interpreter(model_path=str(fp32))._get_ops_details()
        if op["op_name"] == "PADV2"
    ]
    assert pads, "the ImageNet stem's max pool should pad with PADV2, or this proves nothing"
    details = Interpreter(model_path=str(int8)).get_tensor_details()
    scales = np.concatenate([t["quantization_parameters"]["scales"] for t in details])
    assert np.isfinite(scales).all()
    runtime = get_runtime("litert", threads=1)
    runtime.load(int8)  # XNNPACK prepares every node
    assert runtime.run(images.numpy()).shape == (8, 10)


def test_missing_runtime_and_converter_are_skipped_rows_with_reasons(digits, tmp_path, monkeypatch):
    from resnest_bench.harness.export import litert as build_litert_module

    assert "ai-edge-litert" in _missing(monkeypatch, "ai_edge_litert", litert_runtime.LiteRt)
    monkeypatch.undo()
    reason = _missing(monkeypatch, "litert_torch", build_litert_module.converter_missing)
    assert "litert-convert" in reason
    data, model = digits
    section = DeploySection(
        runtimes=("torch-eager", "litert"),
        formats=("tflite",),
        timing=TimingSection(warmup=1, min_iters=2, min_seconds=0.0),
        throughput_batches=(2,),
        timed_images=4,
        rounds=1,
    )
    if litert_runtime.LiteRt.unavailable_reason() is not None:
        pytest.skip("needs ai-edge-litert for the runtime's rows")
    artifacts = build_artifacts(model, data, tmp_path, section)
    assert artifacts.files == {"state_dict": ARTIFACTS["state_dict"].file}  # no ONNX asked for
    assert artifacts.skipped["litert_fp32"] == reason
    assert "not among the formats asked for (tflite)" in artifacts.skipped["onnx_int8"]
    targets, *_ = measure(tmp_path, artifacts, data, section, small_subset=4, spawn=False)
    rows = {t.target: t for t in targets}
    assert rows["torch-eager:fp32"].ok
    assert rows["litert:fp32"].status == rows["litert:int8"].status == "skipped"
    assert rows["litert:int8"].reason == reason


def _missing(monkeypatch, module: str, ask) -> str:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )
    reason = ask.unavailable_reason() if hasattr(ask, "unavailable_reason") else ask()
    assert reason is not None
    return reason


def test_formats_build_only_what_was_asked_and_what_it_needs(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(build_onnx, "AUTO_ORDER", ("torchscript",))
    data, model = digits
    section = DeploySection(
        runtimes=("ort-cpu",), formats=("int8",), calibration_images=32, int8_max_drop=100.0
    )
    artifacts = build_artifacts(model, data, tmp_path, section)
    built = {"state_dict", "onnx_fp32", "onnx_int8"}  # int8 needs the ONNX graph
    assert set(artifacts.files) == built
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ARTIFACTS[k].file for k in built)
    assert artifacts.ort is None and artifacts.litert is None and artifacts.openvino is None
    unasked = {kind for name in FORMATS if name not in ("onnx", "int8") for kind in kinds_of(name)}
    assert set(artifacts.skipped) == unasked


def test_unknown_format_is_one_line_and_exit_2(capsys):
    from resnest_bench.harness.cli import main

    assert main(["export", "--checkpoint", "x.pt", "--formats", "onnx", "tfl"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown format 'tfl'" in err and "tflite" in err and "\n" not in err


def test_calibration_method_reaches_onnx_runtime(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(build_onnx, "AUTO_ORDER", ("torchscript",))
    data, model = digits
    onnx_path = tmp_path / "m.onnx"
    build_onnx.export_onnx(model, onnx_path, _x(data)[:16], atol=1e-3)
    gate = _gate(data, calibration_images=32, calibration_method="percentile")
    record = quantize_int8(onnx_path, tmp_path / "m.int8.onnx", gate, mixed_precision=False)
    assert record.settings.calibration == "percentile"
    assert minmax_only("percentile", "X") == "minmax (percentile is not offered by X)"
