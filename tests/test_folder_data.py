"""Real image folders end to end: scikit-learn's handwritten digits (8x8, upscaled to 32x32)
written as PNGs in the usual train/ + test/ layout, learnt without flips, then exported on
another folder with the preprocessing the checkpoint carries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnest_bench import models
from resnest_bench.harness.checkpoints import read_model_file, save_torch_artifact
from resnest_bench.harness.cli import main
from resnest_bench.harness.data import DeviceLoader, ImageSet, load_dataset, normalize
from resnest_bench.harness.results import read_result

CLASSES = 5  # digits 0-4: a real task that a tiny network learns in seconds
TRAIN, TEST = 30, 10  # images per class


def _write_digits(root: Path, start: int, per_class: int, split: str, invert=False) -> None:
    """Digits [start, start + per_class) of each class as 32x32 RGB PNGs under root/split."""
    from sklearn.datasets import load_digits

    digits, seen = load_digits(), dict.fromkeys(range(CLASSES), 0)
    for image, label in zip(digits.images, digits.target, strict=True):
        if label >= CLASSES:
            continue
        seen[label] += 1
        if not start < seen[label] <= start + per_class:
            continue
        pixels = (image * 255 / 16).astype(np.uint8)
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        big = Image.fromarray(255 - pixels if invert else pixels).resize((32, 32), Image.NEAREST)
        big.convert("RGB").save(folder / f"{seen[label]}.png")


def _never() -> models.ResNeSt:
    raise AssertionError("our files rebuild their own model")


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    _write_digits(root, 0, TRAIN, "train")
    _write_digits(root, TRAIN, TEST, "test")
    return root


@pytest.fixture(scope="module")
def trained(digits: Path, tmp_path_factory) -> tuple[Path, str]:
    reports = tmp_path_factory.mktemp("reports")
    argv = ["--quiet", "train", "--dataset", "folder", "--folder", str(digits)]
    argv += ["--model", "resnest-tiny", "--stem", "imagenet", "--no-flip", "--epochs", "10"]
    argv += ["-b", "16", "--lr", "0.05", "--milestones", "7", "--reports", str(reports)]
    assert main([*argv, "--keep-checkpoints"]) == 0  # the export tests deploy its checkpoint
    (run_id,) = [p.name for p in reports.iterdir() if p.name != "work"]
    return reports, run_id


def test_train_test_layout_is_recognised(digits: Path, tmp_path: Path) -> None:
    data = load_dataset("folder", root=tmp_path, folder=digits)
    assert data.classes == tuple(str(d) for d in range(CLASSES))
    assert len(data.train) == CLASSES * TRAIN and len(data.test) == CLASSES * TEST
    assert data.train_split == f"{digits / 'train'} ({CLASSES * TRAIN} images)"
    assert data.test_split == f"{digits / 'test'} ({CLASSES * TEST} images, held out)"


def test_plain_folder_holds_out_val_fraction_of_each_class(digits: Path, tmp_path: Path) -> None:
    data = load_dataset("folder", root=tmp_path, folder=digits / "train", val_fraction=0.3)
    assert torch.bincount(data.test.labels).tolist() == [9] * CLASSES
    assert data.test_split.startswith("the other 30% of each class, held out by seed 0")


def test_no_flip_and_no_padding_serve_the_images_unchanged() -> None:
    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(8)

    loader = DeviceLoader(
        ImageSet(images, labels), batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3, train=True,
        device="cpu", flip=False, pad=0,
    )  # fmt: skip
    ((x, y),) = list(loader)
    torch.testing.assert_close(x, normalize(images[y], (0.5,) * 3, (0.25,) * 3))
    flipped = DeviceLoader(
        ImageSet(images, labels), batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3, train=True,
        device="cpu", flip=True, pad=0,
    )  # fmt: skip
    ((fx, fy),) = list(flipped)
    assert not torch.equal(fx, normalize(images[fy], (0.5,) * 3, (0.25,) * 3))


def test_digits_are_learnt_without_flips(trained: tuple[Path, str]) -> None:
    reports, run_id = trained
    (run,) = read_result(reports / run_id / "result.json").training.runs
    assert run.recipe.flip is False and run.recipe.crop_padding == 4
    assert run.dataset.train_split.endswith(f"train ({CLASSES * TRAIN} images)")
    assert run.dataset.classes == [str(d) for d in range(CLASSES)]
    assert run.summary.best_test_top1 >= 0.6  # chance is 0.2


@pytest.mark.slow
def test_deploying_on_another_folder_keeps_the_checkpoints_preprocessing(
    trained: tuple[Path, str], tmp_path: Path
) -> None:
    """The other folder's images are inverted (a very different mean): the export must still
    feed them with the training mean/std the checkpoint carries, calibrate on that folder's
    training share and evaluate on its held-out share, and say so."""
    reports, run_id = trained
    (run,) = read_result(reports / run_id / "result.json").training.runs
    checkpoint = reports / "work" / run_id / "train-resnest-tiny" / "checkpoint.pt"
    other = tmp_path / "other"
    _write_digits(other, TRAIN + TEST, 8, "", invert=True)
    own_mean = load_dataset("folder", root=tmp_path, folder=other).mean
    argv = ["--quiet", "export", "--checkpoint", str(checkpoint), "--dataset", "folder"]
    argv += ["--folder", str(other), "--val-fraction", "0.25", "--reports", str(tmp_path / "r")]
    assert main(argv) == 0
    (run_dir,) = [p for p in (tmp_path / "r").iterdir() if p.name != "work"]
    use = read_result(run_dir / "result.json").deployment.data
    assert use.mean == pytest.approx(run.dataset.mean) and use.std == pytest.approx(run.dataset.std)
    assert use.mean != pytest.approx(list(own_mean), abs=0.05)
    assert use.preprocessing_from == f"the checkpoint {checkpoint}"
    assert use.calibration.startswith("30 of 75% of each class of")
    assert use.evaluation.startswith("the other 25% of each class, held out")
    report = (run_dir / "report.md").read_text()
    assert f"int8 calibrated on {use.calibration}" in report and use.evaluation in report
    _, pre = read_model_file(
        run_dir / "artifacts" / "model.pt", fallback=_never, num_classes=CLASSES
    )
    assert pre is not None and list(pre.mean) == pytest.approx(run.dataset.mean)
    assert pre.classes == tuple(run.dataset.classes) and pre.image_size == 32


def test_exporting_with_another_held_out_draw_of_the_same_folder_is_refused(
    digits: Path, tmp_path: Path, capsys
) -> None:
    """A model trained on a flat folder with seed 0; seed 1 would hold out other images, some
    of them training images, and inflate every accuracy."""
    flat = digits / "train"
    data = load_dataset("folder", root=tmp_path, folder=flat, seed=0)
    model = models.create_model("resnest-tiny", num_classes=CLASSES)
    save_torch_artifact(model, tmp_path / "model.pt", data.preprocessing)
    argv = ["--quiet", "export", "--checkpoint", str(tmp_path / "model.pt"), "--dataset"]
    argv += ["folder", "--folder", str(flat), "--reports", str(tmp_path / "r"), "--seed", "1"]
    assert main(argv) == 2
    (err,) = [x for x in capsys.readouterr().err.splitlines() if "error" in x]
    assert err.endswith("some would be training images; pass the same --seed and --val-fraction")
    assert "by seed 0, val_fraction 0.2, but this run draws them by seed 1" in err


def test_deploying_on_a_folder_of_other_classes_is_refused(
    trained: tuple[Path, str], tmp_path: Path, capsys
) -> None:
    reports, run_id = trained
    checkpoint = reports / "work" / run_id / "train-resnest-tiny" / "checkpoint.pt"
    for name in "abcde":
        for i in range(2):
            (tmp_path / "letters" / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (i, 0, 0)).save(tmp_path / "letters" / name / f"{i}.png")
    argv = ["--quiet", "export", "--checkpoint", str(checkpoint), "--dataset", "folder"]
    argv += ["--folder", str(tmp_path / "letters"), "--reports", str(tmp_path / "r")]
    assert main(argv) == 2
    (err,) = [e for e in capsys.readouterr().err.splitlines() if "error" in e]
    assert err.startswith("resnest-bench: error: checkpoint ")
    assert "was trained on classes [0, 1, 2, 3, 4] but" in err
    assert "holds [a, b, c, d, e]: use a folder with the same class sub-folders" in err
