"""The int8 gate's outcome per runtime on two sets of real images, at the project's 0.5-point
limit: ONNX Runtime, OpenVINO (NNCF), ExecuTorch (PT2E) and LiteRT each quantize resnest-tiny
with 512 class-balanced training images and must land within 0.5 pts of their own fp32 top-1 on
held-out images, or say REJECTED.

- digits: scikit-learn's 1,797 scanned handwritten digits, written as a class folder, 20% of
  each class held out (359 images; 0.28 pts is one image);
- photos: 32x32 patches of ten photographs scikit-image ships, one class per photo, written as
  a CIFAR-10 binary archive and read by the CIFAR loader; held-out patches come from rows of
  each photo no training patch touches (400 images; 0.25 pts is one image).
"""

from __future__ import annotations

import pytest

from resnest_bench.harness.config import DeploySection
from resnest_bench.harness.export import build_artifacts

pytest.importorskip("sklearn")
pytestmark = pytest.mark.slow
LIMIT = 0.5
RUNTIMES = ["onnxruntime", "openvino", "executorch", "litert"]
# per set: how many held-out images, and the fp32 top-1 below which the model has not learned
SETS = {"digits": (359, 95.0), "photos": (400, 75.0)}


def _photos(root):
    import torch

    from resnest_bench import models
    from resnest_bench.harness.data import load_dataset
    from tests.photos import photo_cifar_archive
    from tests.training import train_steps

    pytest.importorskip("skimage")
    data = load_dataset("cifar10", root=root / "cache", archive=photo_cifar_archive(root))
    torch.manual_seed(0)
    model = models.create_model("resnest-tiny")
    return data, train_steps(model, data, steps=400, batch=64, lr=0.05)


@pytest.fixture(scope="module", params=list(SETS))
def artifacts(request, tmp_path_factory):
    from tests.training import trained_on_digits

    root = tmp_path_factory.mktemp(request.param)
    if request.param == "digits":
        data, model = trained_on_digits(root, steps=600)
    else:
        data, model = _photos(root)
    section = DeploySection(int8_max_drop=LIMIT, calibration_images=512, threads=1)
    return request.param, data, build_artifacts(model, data, root / "artifacts", section)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_every_runtimes_int8_is_within_half_a_point_on_held_out_images(artifacts, runtime):
    name, data, record = artifacts
    if runtime == "onnxruntime":
        int8 = record.int8
    else:
        converted = record.converted().get(runtime)
        if converted is None:
            pytest.skip(f"{runtime}: {record.skipped.get(f'{runtime}_int8') or 'not built'}")
        int8 = converted.int8
    heldout, learned = SETS[name]
    print(
        f"{name} {runtime}: fp32 {int8.fp32_top1:.2f}%, int8 {int8.int8_top1:.2f}% ({int8.variant})"
    )
    assert int8.fp32_top1 > learned, "the model must learn the images, or this proves nothing"
    assert int8.heldout_images == len(data.test) == heldout  # held out, never calibrated on
    assert int8.calibration_images == 512
    assert int8.within_limit and int8.drop_pts <= LIMIT and not int8.rejected
    assert int8.attempts[-1].accepted and int8.attempts[-1].variant == int8.variant
