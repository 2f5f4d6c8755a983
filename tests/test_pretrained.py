"""Pretrained official/timm checkpoints (issue 21): they carry no preprocessing of ours, so an
export must feed them ImageNet's mean/std at the model card's input size (never the folder's
statistics at 32 px), refuse in one line what cannot fit, and report only what really ran."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
import pytest
import torch
from PIL import Image

from resnest_bench import models
from resnest_bench.harness.checkpoints import read_model_file
from resnest_bench.harness.cli import main
from resnest_bench.harness.data import cifar
from resnest_bench.harness.results import read_result
from resnest_bench.models.weights import ours_to_external
from tests.test_data import RECORDS, cifar10_archive
from tests.test_reliability import _one_error

CLASSES, PER_CLASS = "abcde", 4  # 20 images of 32x32; --val-fraction 0.2 holds out 1 per class
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _timm_file(path: Path, num_classes: int) -> Path:
    """resnest14d weights under timm's (= the official release's) key names, as timm saves."""
    torch.manual_seed(0)
    model = models.create_model("resnest14d", num_classes=num_classes)
    torch.save({ours_to_external(k): v for k, v in model.state_dict().items()}, path)
    return path


def _folder(root: Path) -> Path:
    """Five classes of flat-coloured 32x32 images, far from ImageNet's mean."""
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            Image.new("RGB", (32, 32), (40 * i, 50 * c, 7)).save(root / name / f"{i}.png")
    return root


def _export(checkpoint: Path, reports: Path, *data: str) -> list[str]:
    return [
        "--quiet",
        "export",
        "--checkpoint",
        str(checkpoint),
        "--model",
        "resnest14d",
        *data,
        "--formats",
        "onnx",
        "--reports",
        str(reports),
    ]


def test_timm_weights_export_at_224_with_imagenet_normalisation(tmp_path: Path) -> None:
    checkpoint = _timm_file(tmp_path / "timm.pth", len(CLASSES))
    folder = _folder(tmp_path / "folder")
    reports = tmp_path / "r"
    assert main(_export(checkpoint, reports, "--dataset", "folder", "--folder", str(folder))) == 0
    (run,) = [p for p in reports.iterdir() if p.name != "work"]
    graph = onnx.load(str(run / "artifacts" / "model.onnx")).graph
    dims = [d.dim_value or d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 224, 224]  # before: [batch, 3, 32, 32]
    deployment = read_result(run / "result.json").deployment
    use = deployment.data
    assert use.mean == pytest.approx(IMAGENET_MEAN) and use.std == pytest.approx(IMAGENET_STD)
    assert use.image_size == 224 and use.calibration == "none"
    assert use.preprocessing_from == (
        f"ImageNet's mean/std and resnest14d's 224 px model-card input (the checkpoint "
        f"{checkpoint} holds official/timm pretrained weights, which carry none)"
    )
    assert deployment.artifacts.export.parity.images == 5
    _, pre = read_model_file(run / "artifacts" / "model.pt", fallback=_never, num_classes=5)
    assert list(pre.mean) == pytest.approx(IMAGENET_MEAN) and pre.image_size == 224
    assert pre.classes == tuple(CLASSES)
    report = (run / "report.md").read_text()
    assert (
        "- Images: ONNX parity on 5 images of the other 20% of each class, held out by seed 0 "
        "(5 images); subsets (parity, gate, small 5) class-balanced (classes taking turns, seed "
        "0); int8 calibration and gate: not run (no int8 model was built); accuracy and "
        "agreement: not run (no runtime was timed); preprocessing (mean [0.485, 0.456, 0.406], "
        "std [0.229, 0.224, 0.225], 224 px) from ImageNet's mean/std" in report
    )
    assert "Not run: no runtime was timed (export builds and checks the files" in report
    assert "Not run: no throughput was timed." in report
    assert "| target |\n|---|" not in report and "calibrated on" not in report


def _never() -> models.ResNeSt:
    raise AssertionError("our files rebuild their own model")


def test_an_imagenet_head_on_a_five_class_folder_is_one_line(tmp_path: Path, capsys) -> None:
    checkpoint = _timm_file(tmp_path / "timm.pth", 1000)
    folder = _folder(tmp_path / "folder")
    argv = _export(checkpoint, tmp_path / "r", "--dataset", "folder", "--folder", str(folder))
    assert main(argv) == 2
    assert _one_error(capsys) == (
        f"resnest-bench: error: {checkpoint} holds a 1000-class model but the data set has 5 "
        "classes (fine-tune it on this data set with the transfer step)"
    )
    assert not (tmp_path / "r").exists()  # the refusal writes nothing


def test_timm_weights_on_32px_cifar_are_refused_naming_both_sizes(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """CIFAR comes at 32x32 only: upscaling is not the data path's, so the run refuses."""
    official = dataclasses.replace(cifar.CIFAR_FORMATS["cifar10"], source=cifar10_archive(tmp_path))
    monkeypatch.setitem(cifar.CIFAR_FORMATS, "cifar10", official)
    monkeypatch.setattr(cifar, "OFFICIAL_IMAGES", {"train": 5 * RECORDS, "test": RECORDS})
    checkpoint = _timm_file(tmp_path / "timm.pth", 10)
    data = ["--dataset", "cifar10", "--data-dir", str(tmp_path / "cache")]
    assert main(_export(checkpoint, tmp_path / "r", *data)) == 2
    line = _one_error(capsys)
    assert line.startswith(
        f"resnest-bench: error: checkpoint {checkpoint} holds pretrained weights for 224x224 "
        "images but "
    )
    assert "gives 32x32 (cifar10 images are 32x32; image size 224 is not supported)" in line
    assert line.endswith("use --dataset folder, which resizes, or fine-tune with the transfer step")
    assert not (tmp_path / "r").exists()
