"""Train resnest-tiny with its BatchNorm frozen (eval mode, a fixed affine map), one process
of a torchrun group or alone; save the final weights and epoch records to OUT.

    python -m torch.distributed.run --nproc-per-node 2 tests/ddp_worker.py OUT GLOBAL_BATCH

Frozen BatchNorm makes every layer independent of how a batch is split, so N ranks and one
rank must reach the same weights. (Plain BatchNorm normalises each rank's slice with its own
statistics; PyTorch's SyncBatchNorm, which would fix that, runs on GPUs only.)
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import torch
from torch import nn

from resnest_bench.harness.config import TrainSection
from resnest_bench.harness.data import load_dataset
from resnest_bench.harness.train import create_seeded_model, train
from resnest_bench.harness.train.distributed import process_group, ranks_from_env


def _frozen_batchnorm(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
            module.train = types.MethodType(lambda self, mode=True: self, module)
    return model


def initial() -> dict[str, torch.Tensor]:
    """The weights every run starts from."""
    return create_seeded_model("resnest-tiny", seed=0, num_classes=10).state_dict()


def run(out: Path, global_batch: int) -> None:
    """One rank's part (or the whole run when not under torchrun)."""
    torch.set_num_threads(1)
    ranks = ranks_from_env()
    data = load_dataset(
        "synthetic", root=Path("unused"), train_subset=128, test_subset=32, image_size=16
    )
    model = _frozen_batchnorm(create_seeded_model("resnest-tiny", seed=0, num_classes=10))
    world = ranks.world_size if ranks else 1
    section = TrainSection(epochs=2, batch_size=global_batch // world, lr=0.05, milestones=())

    def fit() -> None:
        result = train(model, data, out / "work", section, device="cpu", seed=0, ranks=ranks)
        if ranks is None or ranks.writer:
            torch.save(model.state_dict(), out / "weights.pt")
            records = [r.model_dump(mode="json") for r in result.epochs]
            (out / "records.json").write_text(json.dumps(records))

    if ranks is None:
        fit()
        return
    with process_group(ranks, torch.device("cpu"), timeout_s=120):
        fit()


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]))
