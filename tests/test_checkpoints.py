"""harness.checkpoints: deployment artifacts, training checkpoints, and a user's --checkpoint.

Every bad file is a one-line BenchError that names it and says in our words what it is.
"""

from __future__ import annotations

import pytest
import torch

from resnest_bench import models
from resnest_bench.harness import checkpoints
from resnest_bench.harness.checkpoints import (
    TrainCheckpoint,
    load_torch_artifact,
    model_from_file,
    read_checkpoint,
    save_torch_artifact,
    write_checkpoint,
)
from resnest_bench.harness.errors import BenchError
from resnest_bench.models.weights import ours_to_external

IMAGE = 16


@pytest.fixture(scope="module")
def model() -> models.ResNeSt:
    torch.manual_seed(0)
    return models.create_model("resnest-tiny").eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(8, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))


def _never() -> models.ResNeSt:
    raise AssertionError("a file of ours rebuilds its own model; fallback must not be called")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), key


# --- deployment artifacts ---------------------------------------------------------------------


def test_torch_artifact_round_trip(model, images, tmp_path):
    path = tmp_path / "model.pt"
    assert save_torch_artifact(model, path) == path.stat().st_size
    with torch.inference_mode():
        torch.testing.assert_close(load_torch_artifact(path)(images), model(images))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        (b"not a zip", "cannot read weights file .*: it is not a PyTorch file"),
        ("plain", "not a deployment model file"),
    ],
)
def test_bad_artifact(tmp_path, content, message):
    path = tmp_path / "model.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "plain":
        torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(BenchError, match=message) as info:
        load_torch_artifact(path)
    assert "\n" not in str(info.value)


def test_artifact_not_matching_its_config(model, tmp_path):
    path = tmp_path / "model.pt"
    save_torch_artifact(model, path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["num_classes"] = 3
    torch.save(payload, path)
    with pytest.raises(BenchError, match="does not match its config"):
        load_torch_artifact(path)


def test_only_our_models_are_saved(tmp_path):
    with pytest.raises(BenchError, match=r"models\.create_model"):
        save_torch_artifact(torch.nn.Linear(2, 2), tmp_path / "m.pt")


# --- training checkpoints ---------------------------------------------------------------------


def _checkpoint(model: models.ResNeSt) -> TrainCheckpoint:
    return TrainCheckpoint(
        model_config=model.config,
        identity={"seed": 0},
        state={"model": model.state_dict(), "optimizer": {}, "scaler": {}, "rng": {}},
        batch_size=8,
        failed_batch_sizes=(16,),
        records=(),
    )


def test_training_checkpoint_round_trip(model, tmp_path):
    path = tmp_path / "checkpoint.pt"
    write_checkpoint(path, _checkpoint(model))
    back = read_checkpoint(path)
    assert back.model_config == model.config and back.epoch == 0
    assert back.failed_batch_sizes == (16,) and back.identity == {"seed": 0}
    assert list(tmp_path.iterdir()) == [path]  # atomic: no temp file left behind


def test_foreign_and_old_training_checkpoints(model, tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(BenchError, match="not a resnest-bench training checkpoint"):
        read_checkpoint(path)
    write_checkpoint(path, _checkpoint(model))
    payload = torch.load(path, weights_only=True)
    payload["version"] = 1
    torch.save(payload, path)
    with pytest.raises(BenchError, match="checkpoint version 1; this build resumes version 2"):
        read_checkpoint(path)


# --- a user's --checkpoint --------------------------------------------------------------------


def test_model_from_our_files_uses_their_config_and_reads_once(model, tmp_path, monkeypatch):
    other = models.create_model("resnest-tiny", radix=1, num_classes=10)  # not the suite's model
    artifact, ckpt = tmp_path / "model.pt", tmp_path / "checkpoint.pt"
    save_torch_artifact(other, artifact)
    write_checkpoint(ckpt, _checkpoint(other))
    reads = []
    real = checkpoints.load_file
    monkeypatch.setattr(checkpoints, "load_file", lambda p: reads.append(p) or real(p))
    for path in (artifact, ckpt):
        loaded = model_from_file(path, fallback=_never, num_classes=10)
        assert loaded.config == other.config
        _same_weights(loaded, other)
    assert reads == [artifact, ckpt]


def test_model_from_plain_and_official_weights_uses_the_fallback(model, tmp_path):
    plain, official = tmp_path / "plain.pth", tmp_path / "official.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, plain)
    torch.save({ours_to_external(k): v for k, v in model.state_dict().items()}, official)
    built: list[models.ResNeSt] = []

    def fallback() -> models.ResNeSt:
        built.append(models.create_model("resnest-tiny"))
        return built[-1]

    for path in (plain, official):
        loaded = model_from_file(path, fallback=fallback, num_classes=10)
        assert built[-1] is loaded
        _same_weights(loaded, model)
    assert len(built) == 2


def test_model_from_file_errors_are_one_line(model, tmp_path):
    imagenet = tmp_path / "imagenet.pth"
    torch.save(models.create_model("resnest-tiny", num_classes=1000).state_dict(), imagenet)
    ours = tmp_path / "model.pt"
    save_torch_artifact(model, ours)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    pickled = tmp_path / "whole.pt"
    torch.save(model, pickled)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    no_tensors = tmp_path / "config.pt"
    torch.save({"lr": 0.1}, no_tensors)
    cases = [
        (imagenet, "holds a 1000-class model but the data set has 100 classes"),
        (ours, "holds a 10-class model but the data set has 100 classes"),
        (text, "it is not a PyTorch file"),
        (pickled, "Python objects besides tensors"),
        (empty, "it is empty"),
        (no_tensors, "holds no state dict of tensors .*expected a resnest-bench model file"),
        (tmp_path / "missing.pt", "weights file not found"),
    ]
    for path, message in cases:
        with pytest.raises(BenchError, match=message) as info:
            model_from_file(
                path, fallback=lambda: models.create_model("resnest-tiny"), num_classes=100
            )
        assert "\n" not in str(info.value) and str(path) in str(info.value)
