"""Train (or fine-tune) a ResNeSt on a Dataset and time every epoch: the training benchmark.

    run = train(model, dataset, work_dir, suite.train, device="cuda", seed=0)

loop.py holds the epoch loop and checkpointing, run.py the run around it (resume checks, OOM
retries, the TrainingRun), summary.py the per-epoch records' summary, transfer.py where first
weights come from (a seeded init or a transferred body).
"""

from __future__ import annotations

from resnest_bench.harness.train.loop import CHECKPOINT_NAME, EPOCH_LOG_NAME, Callbacks
from resnest_bench.harness.train.run import train
from resnest_bench.harness.train.summary import summarize
from resnest_bench.harness.train.transfer import create_seeded_model, load_transfer_weights

__all__ = [
    "CHECKPOINT_NAME",
    "EPOCH_LOG_NAME",
    "Callbacks",
    "create_seeded_model",
    "load_transfer_weights",
    "summarize",
    "train",
]
