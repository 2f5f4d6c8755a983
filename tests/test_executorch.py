"""ExecuTorch + XNNPACK: the fp32 program reproduces PyTorch, the int8 one passes the same
accuracy gate on real images, the tiny model's split attention is all XNNPACK, and the runtime
is measured side by side with the others by the normal deploy path."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.config import DeploySection, TimingSection
from resnest_bench.harness.data import load_dataset, normalize
from resnest_bench.harness.data.split import stratified_subset
from resnest_bench.harness.deploy import run_deploy
from resnest_bench.harness.export import onnx as build_onnx
from resnest_bench.harness.export.executorch import build_executorch
from resnest_bench.harness.export.gate import GateData
from resnest_bench.harness.report.deployment import coverage_table
from resnest_bench.harness.runtimes import get_runtime
from tests.digits import write_digits
from tests.training import train_steps

pytest.importorskip("executorch")
pytest.importorskip("sklearn")

LIMIT = 1.0  # top-1 points int8 may lose, as for ONNX Runtime's int8 on the same images


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """resnest-tiny after 100 SGD steps on scikit-learn's scanned digits at 16x16."""
    root = tmp_path_factory.mktemp("digits")
    data = load_dataset(
        "folder", root=root, folder=write_digits(root / "images", 16), image_size=16, seed=0
    )
    torch.manual_seed(0)
    model = train_steps(models.create_model("resnest-tiny"), data, steps=100, batch=64, lr=0.05)
    return data, model


def _gate(data, **overrides) -> GateData:
    settings = {"calibration_images": 256, "max_drop_pts": LIMIT, **overrides}
    return GateData(
        calibration=data.train, heldout=data.test, mean=data.mean, std=data.std, **settings
    )


@pytest.fixture(scope="module")
def built(digits, tmp_path_factory):
    data, model = digits
    folder = tmp_path_factory.mktemp("pte")
    record = build_executorch(model, folder / "model.pte", folder / "model.int8.pte", _gate(data))
    return record, folder


@pytest.mark.slow
def test_fp32_program_reproduces_pytorch(digits, built):
    data, model = digits
    record, folder = built
    runtime = get_runtime("executorch", threads=1)
    runtime.load(folder / record.fp32_path)
    x = normalize(data.test.images[:32], data.mean, data.std)
    with torch.inference_mode():
        want = model(x).numpy()
    got = runtime.run(x.numpy())  # 32 images: 32 batch-1 calls of the static-batch program
    diff = float(np.abs(got - want).max())
    print(f"executorch fp32 vs PyTorch: max |logit diff| {diff:.2e}")
    assert got.shape == want.shape and diff < 1e-4


@pytest.mark.slow
def test_int8_passes_the_gate_on_real_digits(built):
    record, folder = built
    int8 = record.int8
    assert int8.fp32_top1 > 60.0, "the model must learn the digits, or this proves nothing"
    assert int8.within_limit and int8.drop_pts <= LIMIT
    assert int8.settings.per_channel and int8.calibration_images == 256
    assert record.version.startswith("1.")
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert sorted(sizes) == ["model.int8.pte", "model.pte"]
    assert sizes["model.int8.pte"] < 0.5 * sizes["model.pte"]  # int8 weights really


@pytest.mark.slow
def test_tiny_model_runs_entirely_in_xnnpack(built):
    """The goal of issue 11: split attention in the delegate, and the pools too: the program's
    input shape is fixed, so build.static_pools swaps the published pools (ceil_mode, counting
    zero padding), which XNNPACK refuses, for exact equivalents it takes."""
    record, _ = built
    assert set(record.coverage) == {"executorch_fp32", "executorch_int8"}
    for kind, cover in record.coverage.items():
        assert cover.delegate == "XNNPACK"
        assert cover.fallback == {}, (kind, cover.fallback)
        assert cover.total_ops > 100 and cover.delegated_ops == cover.total_ops


@pytest.mark.slow
def test_ranked_variants_keep_the_most_sensitive_convs_fp32(digits, tmp_path):
    data, model = digits
    # nothing passes: every ranked variant is tried and recorded, the least lossy one kept
    gate = _gate(data, calibration_images=64, max_drop_pts=-100)
    gate = replace(gate, heldout=stratified_subset(data.test, 64, 0))  # scored quicker
    record = build_executorch(model, tmp_path / "m.pte", tmp_path / "m.int8.pte", gate)
    attempts = record.int8.attempts
    # 29 layers: resnest-tiny's 26 convs and linear, and 3 pools made depthwise convs
    assert [a.variant for a in attempts] == ["pt2e"] + [
        f"pt2e+{k}-most-sensitive-fp32" for k in (1, 2, 3, 4, 6, 9, 14)
    ]
    assert [a.excluded_nodes for a in attempts] == [0, 1, 2, 3, 4, 6, 9, 14]
    assert all(name.startswith(("conv2d", "linear")) for name in attempts[-1].kept_fp32)
    assert record.int8.rejected
    # and really stays fp32: the 13 kept layers' fp32 weights make the file larger
    assert attempts[-1].size_bytes > attempts[0].size_bytes  # fp32 weights weigh more


@pytest.mark.slow
def test_measured_side_by_side_by_the_deploy_path(tmp_path, monkeypatch):
    monkeypatch.setattr(build_onnx, "AUTO_ORDER", ("torchscript",))
    data = load_dataset("synthetic", root=tmp_path, train_subset=64, test_subset=24, image_size=16)
    torch.manual_seed(0)
    section = DeploySection(
        runtimes=("torch-eager", "ort-cpu", "executorch"),
        timing=TimingSection(warmup=1, min_iters=3, min_seconds=0.0),
        throughput_batches=(2,),
        timed_images=8,
        calibration_images=32,
        int8_max_drop=100.0,  # untrained: accuracy is noise; the gate is tested above
        threads=1,
    )
    model = models.create_model("resnest-tiny").eval()
    result = run_deploy(model, data, tmp_path / "run", section, small_subset=6)
    rows = {t.target: t for t in result.targets}
    for name in ("executorch:fp32", "executorch:int8"):
        row = rows[name]
        assert row.ok, row.reason
        assert row.speedup.rounds == rows["torch-eager:fp32"].speedup.rounds == 5
        assert row.batching and "batch 1" in row.batching
        assert row.throughput["2"].images_per_s > 0
    assert rows["executorch:fp32"].agreement_top1_pct == 100.0
    assert rows["executorch:fp32"].max_prob_diff < 1e-5
    assert rows["ort-cpu:fp32"].batching is None
    record = result.artifacts.executorch
    assert record is not None and record.coverage["executorch_fp32"].fraction == 1.0
    assert result.artifacts.files["executorch_int8"] == "model.int8.pte"
    assert "| executorch_fp32 | XNNPACK |" in coverage_table(result)
