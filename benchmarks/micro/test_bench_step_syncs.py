"""Host syncs and aten ops per training step, evaluation pass and finiteness check, on the CPU.

    python -m pytest benchmarks/micro/test_bench_step_syncs.py -s

On a GPU every host sync (`.item()`, `bool(t)`, a data-dependent shape) and every upload of
Python data (`torch.tensor([...])`) stalls the kernel queue; at ResNeSt-50 bf16 batch 128 on an
H100 a step is a few milliseconds, so stalls and op count decide the epoch time. Both are the
same aten ops on the CPU, so harness.train.opcount counts them here without a GPU. The figures
depend on the code, not on the machine or its load: ResNeSt-50 with the ImageNet stem, tiny
images and batch so the CPU gets through it in seconds.
"""

from __future__ import annotations

import pytest
import torch

from resnest_bench import models
from resnest_bench.harness.config import TrainSection
from resnest_bench.harness.data import load_dataset
from resnest_bench.harness.gpu.accel import Accel
from resnest_bench.harness.train.loop import Trainer, _train_step
from resnest_bench.harness.train.opcount import OpCounter

STEPS = 3
BATCH = 4
EVAL_BATCHES = 3


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_syncs_and_ops_per_step(tmp_path, precision):
    data = load_dataset(
        "synthetic", root=tmp_path, train_subset=BATCH * (STEPS + 1), test_subset=BATCH * 3
    )
    torch.manual_seed(0)
    model = models.create_model("resnest50d", num_classes=data.num_classes, stem="imagenet")
    accel = Accel(device=torch.device("cpu"), precision=precision)
    trainer = Trainer(model, data, TrainSection(), accel, batch_size=BATCH, seed=0)
    trainer.runner.train()
    batches = iter(trainer.train_loader)

    def step() -> None:
        x, y = next(batches)
        _train_step(trainer.runner, x, y, trainer.optimizer, trainer.scaler, accel, 0.0)

    step()  # first step: lazily built optimizer state
    with OpCounter() as counter:
        for _ in range(STEPS):
            step()
    per_step = counter.counts.per(STEPS)
    with OpCounter() as evaluated:
        trainer.evaluate()
    with OpCounter() as checked:
        trainer.weights_finite()
    params = sum(1 for _ in model.parameters())
    print(
        f"\nresnest50d imagenet stem, {precision}, batch {BATCH}, CPU, {params} parameter tensors"
        f"\n  train step:     {per_step['ops']:.0f} ops, {per_step['syncs']:.0f} host syncs, "
        f"{per_step['uploads']:.0f} uploads  {dict(counter.counts.sync_ops)}"
        f"\n  evaluate ({EVAL_BATCHES} batches): {evaluated.counts.ops} ops, "
        f"{evaluated.counts.syncs} host syncs, {evaluated.counts.uploads} uploads"
        f"\n  weights_finite: {checked.counts.ops} ops, {checked.counts.syncs} host syncs"
    )
    assert counter.counts.ops > 0
