"""The int8 gate's outcome per runtime on real images, at the project's 0.5-point limit.

resnest-tiny learns scikit-learn's scanned digits (1,797 real images from an installed package,
written as a class folder, 20% of each class held out) and goes through the same build stage
as `export`: ONNX Runtime, OpenVINO (NNCF), ExecuTorch (PT2E) and LiteRT each quantize it with
512 class-balanced training images and must land within 0.5 pts of their own fp32 top-1 on
the 359 held-out images (0.28 pts is one image), or say REJECTED.
"""

from __future__ import annotations

import pytest

from resnest_bench.harness.build import build_artifacts
from resnest_bench.harness.config import DeploySection
from tests.training import trained_on_digits

pytest.importorskip("sklearn")
pytestmark = pytest.mark.slow
LIMIT = 0.5


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    data, model = trained_on_digits(root, steps=600)
    section = DeploySection(int8_max_drop=LIMIT, calibration_images=512, threads=1)
    return data, build_artifacts(model, data, root / "artifacts", section)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "executorch", "litert"])
def test_every_runtimes_int8_is_within_half_a_point_on_held_out_digits(artifacts, runtime):
    data, record = artifacts
    if runtime == "onnxruntime":
        int8 = record.int8
    else:
        converted = record.converted().get(runtime)
        if converted is None:
            pytest.skip(f"{runtime}: {record.skipped.get(f'{runtime}_int8') or 'not built'}")
        int8 = converted.int8
    print(f"{runtime}: fp32 {int8.fp32_top1:.2f}%, int8 {int8.int8_top1:.2f}% ({int8.variant})")
    assert int8.fp32_top1 > 95.0, "the model must learn the digits, or this proves nothing"
    assert int8.heldout_images == len(data.test) == 359  # held out, never calibrated on
    assert int8.calibration_images == 512
    assert int8.within_limit and int8.drop_pts <= LIMIT and not int8.rejected
    assert int8.attempts[-1].accepted and int8.attempts[-1].variant == int8.variant
