"""int8 on real images, on this machine's CPU: the gate's chosen scheme keeps accuracy.

A small ResNeSt learns scikit-learn's scanned digits (a real image data set shipped by an
installed package), then goes through the same export and int8 gate as a deployment. On x86 CPUs
without VNNI, ONNX Runtime's default u8s8 saturates: the test also shows that loss is real, which
is why the gate picks another scheme there.
"""

from __future__ import annotations

import platform

import pytest

from resnest_bench.harness.data import normalize
from resnest_bench.harness.export.gate import GateData
from resnest_bench.harness.export.int8 import quantize_int8
from resnest_bench.harness.export.int8_schemes import U8S8, schemes_for, schemes_for_this_cpu
from resnest_bench.harness.export.onnx import export_onnx
from resnest_bench.harness.host.envinfo import isa_flags
from tests.training import trained_on_digits

pytest.importorskip("sklearn")
LIMIT = 1.0  # top-1 points int8 may lose


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    data, model = trained_on_digits(root)
    test_x = normalize(data.test.images, data.mean, data.std)
    export_onnx(model, root / "m.onnx", test_x[:64], atol=1e-3, exporter="torchscript")
    return data, root / "m.onnx"


def _gate(digits_model, out, **kwargs):
    data, onnx_path = digits_model
    gate = GateData(
        calibration=data.train,
        calibration_images=256,
        heldout=data.test,
        mean=data.mean,
        std=data.std,
        max_drop_pts=LIMIT,
    )
    return quantize_int8(onnx_path, out, gate, **kwargs)


def test_the_gate_ships_int8_that_keeps_accuracy_on_this_cpu(digits_model, tmp_path):
    result = _gate(digits_model, tmp_path / "m.int8.onnx")
    assert result.fp32_top1 > 60.0, "the model must learn the digits, or this proves nothing"
    assert result.within_limit and result.drop_pts <= LIMIT
    assert result.settings.schemes == schemes_for_this_cpu()[0]
    assert result.heldout_images == len(digits_model[0].test)  # held-out, never calibration


@pytest.mark.skipif(
    platform.machine() != "x86_64" or schemes_for(isa_flags(), "x86_64")[0][0] == U8S8,
    reason="u8s8 saturates only on x86 without VNNI",
)
def test_u8s8_really_loses_accuracy_without_vnni(digits_model, tmp_path):
    u8s8 = _gate(
        digits_model, tmp_path / "u8s8.onnx", schemes=([U8S8], "forced"), mixed_precision=False
    )
    chosen = _gate(digits_model, tmp_path / "chosen.onnx")
    assert u8s8.drop_pts > chosen.drop_pts + 2.0
