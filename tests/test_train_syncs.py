"""The training step never makes the host wait for the device; evaluation and the finiteness
check wait at their end only, whatever the number of batches or parameters (counted by
harness.train.opcount)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from resnest_bench.harness.config import TrainSection
from resnest_bench.harness.data import load_dataset, normalize
from resnest_bench.harness.gpu.accel import Accel
from resnest_bench.harness.train import create_seeded_model
from resnest_bench.harness.train.loop import Trainer, _train_step
from resnest_bench.harness.train.opcount import OpCounter

BATCH = 8


def _trainer(precision: str = "fp32", test_images: int = 3 * BATCH) -> Trainer:
    data = load_dataset(
        "synthetic",
        root=Path("unused"),
        train_subset=4 * BATCH,
        test_subset=test_images,
        image_size=8,
        num_classes=4,
    )
    model = create_seeded_model("resnest-tiny", seed=0, num_classes=4)
    accel = Accel(device=torch.device("cpu"), precision=precision)
    return Trainer(model, data, TrainSection(), accel, batch_size=BATCH, seed=0)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_makes_no_host_sync_and_uploads_nothing(precision):
    trainer = _trainer(precision)
    trainer.runner.train()
    batches = iter(trainer.train_loader)

    def step() -> None:
        x, y = next(batches)
        _train_step(trainer.runner, x, y, trainer.optimizer, trainer.scaler, trainer.accel, 0.1)

    step()  # the first step builds the optimizer's momentum buffers
    with OpCounter() as counter:
        step()
        step()
    assert counter.counts.ops > 100  # the counter saw forward, backward and the update
    assert counter.counts.syncs == 0, dict(counter.counts.sync_ops)
    assert counter.counts.uploads == 0


def test_the_counter_sees_reads_masks_and_uploads():
    x = torch.randn(4, 3)
    with OpCounter() as counter:
        _ = x.sum().item(), bool(x[0, 0] > 0), x[x > 0], torch.tensor([1.0, 2.0])
    assert counter.counts.sync_ops == {"_local_scalar_dense": 2, "index": 1}
    assert counter.counts.uploads == 1


def test_sgd_is_fused_where_the_device_has_the_kernel():
    trainer = _trainer()
    assert trainer.accel.fused_sgd  # the CPU has it in this PyTorch
    assert trainer.optimizer.param_groups[0]["fused"] is True
    assert trainer.accel.describe().fused_optimizer is True


@pytest.mark.parametrize("test_images", [BATCH, 4 * BATCH + 3])
def test_evaluation_reads_the_device_only_at_the_end_and_matches_a_plain_loop(test_images):
    trainer = _trainer(test_images=test_images)
    trainer.evaluate()  # the first pass builds normalize's constants for this data
    with OpCounter() as counter:
        got = trainer.evaluate()
    assert counter.counts.sync_ops == {"_local_scalar_dense": 2}  # loss and top-1, at the end
    assert counter.counts.uploads == 0
    test = trainer.test_loader
    with torch.no_grad():
        logits = trainer.model(normalize(test.images, test.mean, test.std))
    expected = torch.nn.functional.cross_entropy(logits, test.labels).item()
    assert got["test_loss"] == pytest.approx(expected, rel=1e-5)
    assert got["test_top1"] == (logits.argmax(1) == test.labels).sum().item() / len(test.labels)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_weights_finite_reads_once_and_finds_any_bad_weight(bad):
    trainer = _trainer()
    with OpCounter() as counter:
        assert trainer.weights_finite()
    assert counter.counts.syncs == 1
    last = list(trainer.model.parameters())[-1]
    with torch.no_grad():
        last.view(-1)[-1] = bad
    assert not trainer.weights_finite()
