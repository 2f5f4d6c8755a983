"""Data-parallel training (harness.train.distributed) on CPU with Gloo: real torchrun ranks.

Equality with one rank: with plain BatchNorm each rank normalises its half batch with its own
statistics, which one rank with the whole batch does not, and PyTorch's SyncBatchNorm runs on
GPUs only. So the weights test (tests/ddp_worker.py) freezes BatchNorm (eval mode: a fixed
affine map); the CLI runs use plain BatchNorm. Ranks run one CPU thread each
(OMP_NUM_THREADS=1) so repeated runs are bit-identical.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnest_bench.harness.checkpoints import read_checkpoint
from resnest_bench.harness.cli import main
from resnest_bench.harness.config import TrainSection
from resnest_bench.harness.data import DeviceLoader, load_dataset
from resnest_bench.harness.report.scaling import render
from resnest_bench.harness.results import read_result
from resnest_bench.harness.results.scaling import ScalingResult
from resnest_bench.harness.results.training import EpochRecord
from resnest_bench.harness.sweep.scaling import _row
from resnest_bench.harness.train.distributed import CRASH_ENV, Ranks, scaled_section
from tests import ddp_worker

TRAIN = [
    "train",
    "--model",
    "resnest-tiny",
    "--dataset",
    "synthetic",
    "--train-subset",
    "128",
    "--test-subset",
    "32",
    "--epochs",
    "2",
    "--lr",
    "0.05",
    "--device",
    "cpu",
    "--quiet",
    "--keep-checkpoints",
]
GLOBAL_BATCH = 32
TWO_RANKS = ["-b", str(GLOBAL_BATCH // 2), "--lr-scaling", "linear"]  # lr 0.05 x 2


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", CRASH_ENV)}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _run(command: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=_env(**env), capture_output=True, text=True, timeout=240)


def _published(reports: Path) -> list[Path]:
    return sorted(reports.glob("*/result.json"))


def _weights(reports: Path) -> dict[str, torch.Tensor]:
    (ckpt,) = reports.glob("work/*/train-resnest-tiny/checkpoint.pt")
    return read_checkpoint(ckpt).state["model"]


def _records(reports: Path) -> list[EpochRecord]:
    (result,) = _published(reports)
    return read_result(result).training.runs[0].epochs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One 2-rank CLI run (torchrun, 16 images per rank) and one plain 1-rank run with the same
    global batch of 32."""
    root = tmp_path_factory.mktemp("ddp")
    two, one = root / "two", root / "one"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    torchrun += ["2", "-m", "resnest_bench.harness.cli", *TRAIN]
    done = _run([*torchrun, *TWO_RANKS, "--reports", str(two)])
    assert done.returncode == 0, done.stderr[-3000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*TRAIN, "-b", str(GLOBAL_BATCH), "--reports", str(one)]) == 0
    finally:
        torch.set_num_threads(threads)
    return two, one


def test_shards_of_a_global_batch_are_the_one_rank_batch():
    data = load_dataset("synthetic", root=Path("unused"), train_subset=40, image_size=8, seed=0)
    args = {"mean": data.mean, "std": data.std, "train": True, "device": "cpu", "seed": 3}
    whole = DeviceLoader(data.train, batch_size=8, **args)
    shards = [DeviceLoader(data.train, batch_size=4, **args) for _ in range(2)]
    for rank, shard in enumerate(shards):
        shard.shard(rank, 2)
    for epoch in (0, 1):
        for loader in (whole, *shards):
            loader.set_epoch(epoch)
        parts = list(zip(whole, *shards, strict=True))
        assert len(parts) == 40 // 8
        for (x, y), (x0, y0), (x1, y1) in parts:
            assert torch.equal(x, torch.cat([x0, x1])) and torch.equal(y, torch.cat([y0, y1]))


def test_global_batch_must_fit_the_images():
    data = load_dataset("synthetic", root=Path("unused"), train_subset=40, image_size=8, seed=0)
    loader = DeviceLoader(
        data.train, batch_size=32, mean=data.mean, std=data.std, train=True, device="cpu"
    )
    with pytest.raises(Exception, match="global batch 64 \\(2 ranks\\) exceeds the 40 images"):
        loader.shard(0, 2)


def test_lr_scaling_rule_and_old_records_load():
    ranks = Ranks(rank=0, world_size=4, local_rank=0)
    assert scaled_section(TrainSection(lr=0.1), ranks).lr == 0.1
    assert scaled_section(TrainSection(lr=0.1, lr_scaling="linear"), ranks).lr == pytest.approx(0.4)
    record = EpochRecord(**_fields_of_a_record())  # written before these fields existed
    assert (record.world_size, record.rank_images_per_s) == (1, None)


def _fields_of_a_record() -> dict:
    return {
        "epoch": 1, "batch_size": 8, "lr": 0.1, "warmup": True, "train_s": 1.0, "eval_s": 0.1,
        "cumulative_train_s": 1.0, "images": 8, "images_per_s": 8.0, "train_loss": 1.0,
        "train_acc": 0.5, "weights_finite": True, "test_loss": 1.0, "test_top1": 0.5,
        "peak_memory_bytes": None, "energy_j": None, "mean_power_w": None,
        "energy_method": None, "flops_per_s": 1.0, "mfu": None,
    }  # fmt: skip


def test_two_ranks_reach_the_one_rank_weights(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir(), one.mkdir()
    worker = str(Path(__file__).with_name("ddp_worker.py"))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    done = _run([*torchrun, "2", worker, str(two), str(GLOBAL_BATCH)])
    assert done.returncode == 0, done.stderr[-3000:]
    threads = torch.get_num_threads()
    try:
        ddp_worker.run(one, GLOBAL_BATCH)  # one process, the whole global batch
    finally:
        torch.set_num_threads(threads)
    w2, w1 = torch.load(two / "weights.pt"), torch.load(one / "weights.pt")
    assert (two / "work").is_dir() and not (two / "work-rank-1").exists()
    moved = 0.0
    for name, tensor in w1.items():
        torch.testing.assert_close(w2[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
        if tensor.is_floating_point():
            moved = max(moved, float((tensor - ddp_worker.initial()[name]).abs().max()))
    assert moved > 1e-3  # the runs trained: equal weights are not the untouched init
    r2, r1 = (json.loads((d / "records.json").read_text()) for d in (two, one))
    assert [r["images"] for r in r2] == [r["images"] for r in r1] == [128, 128]
    assert [r["world_size"] for r in r2] == [2, 2]
    for a, b in zip(r2, r1, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["test_top1"] == b["test_top1"]


def test_sync_batchnorm_is_refused_on_cpu_ranks(tmp_path):
    command = [sys.executable, "-m", "resnest_bench.harness.cli", *TRAIN, "--sync-bn"]
    done = _run([*command, "-b", "16", "--reports", str(tmp_path), "--nproc", "1"])
    assert done.returncode == 2
    assert "sync_batchnorm needs CUDA ranks" in done.stderr


@pytest.mark.slow
def test_result_states_ranks_and_global_batch(runs):
    two, _ = runs
    run = read_result(_published(two)[0]).training.runs[0]
    dist = run.distributed
    assert (dist.world_size, dist.backend, dist.batch_size, dist.global_batch_size) == (
        2,
        "gloo",
        GLOBAL_BATCH // 2,
        GLOBAL_BATCH,
    )
    assert not dist.sync_batchnorm and (dist.lr_scaling, dist.lr) == ("linear", 0.1)
    assert [r.lr for r in run.epochs] == [0.1, 0.1]
    last = run.epochs[-1]
    assert last.world_size == 2 and len(last.rank_images_per_s) == 2
    assert last.images_per_s == pytest.approx(last.images / last.train_s)
    log = (two / _published(two)[0].parent.name / "epochs-resnest-tiny.jsonl").read_text()
    assert len(log.splitlines()) == 2
    report = (_published(two)[0].parent / "report.md").read_text()
    assert "| 16 x 2 ranks = 32 |" in report


@pytest.mark.slow
def test_scaling_row_against_the_one_rank_run(runs):
    two, one = runs
    run2 = read_result(_published(two)[0]).training.runs[0]
    run1 = read_result(_published(one)[0]).training.runs[0]
    row = _row(run2, run1, 2, "x")
    speedup = run2.summary.steady_images_per_s / run1.summary.steady_images_per_s
    assert row.speedup == pytest.approx(speedup) and row.efficiency == pytest.approx(speedup / 2)
    assert (row.ranks, row.global_batch_size, row.batch_size) == (2, 32, 16)
    table = render(
        ScalingResult(
            created="now", command=["resnest-bench"], suite="t", device="cpu", device_name="c",
            cpu_model=None, threads_per_rank=1, loadavg_before=[0, 0, 0],
            loadavg_after=[0, 0, 0], rows=[_row(run1, run1, 1, "y"), row],
        )
    )  # fmt: skip
    assert "| ranks |" in table.replace("| model | ranks |", "| ranks |")
    assert f"{row.speedup:.2f}x" in table and "1.00x" in table


@pytest.mark.slow
def test_a_dying_rank_stops_the_run_and_resume_is_exact(runs, tmp_path):
    two, _ = runs
    reports = tmp_path / "reports"
    command = [sys.executable, "-m", "resnest_bench.harness.cli", *TRAIN]
    command += [*TWO_RANKS, "--reports", str(reports)]
    command += ["--nproc", "2"]
    crashed = _run(command, **{CRASH_ENV: "1:2:2"})  # rank 1 dies after batch 2 of epoch 2
    assert crashed.returncode == 2, crashed.stderr[-3000:]
    last = crashed.stderr.strip().splitlines()[-1]
    assert last.startswith("resnest-bench: error: rank 1 (exit code 17) of 2 ranks failed"), last
    assert _published(reports) == []  # no result.json, no report
    assert not list(reports.glob("*/report.md"))
    (work,) = (reports / "work").iterdir()
    # the launcher says how to resume even when torchrun stopped rank 0 before it could
    assert last.endswith(
        f"continue it with: {shlex.join(['resnest-bench', *command[3:]])} --resume {work.name}"
    ), last
    resumed = _run([*command, "--resume", work.name])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = read_result(_published(reports)[0]).training.runs[0]
    assert run.resumed_from_epoch == 1
    for a, b in zip(run.epochs, _records(two), strict=True):
        assert (a.train_loss, a.train_acc, a.test_top1) == (b.train_loss, b.train_acc, b.test_top1)
    for name, tensor in _weights(two).items():
        assert torch.equal(_weights(reports)[name], tensor), name


def test_several_ranks_refuse_a_suite_that_does_not_train(tmp_path):
    command = [sys.executable, "-m", "resnest_bench.harness.cli", "export", "--checkpoint", "x.pt"]
    done = _run(
        [*command, "--reports", str(tmp_path), "--device", "cpu"],
        RANK="0",
        WORLD_SIZE="2",
        LOCAL_RANK="0",
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("resnest-bench: error: several ranks (torchrun) run only"), last


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_reach_the_two_rank_weights(tmp_path):
    """Multi-node as a cluster runs it: two torchrun agents, each a "node" with one rank, meet
    at a c10d rendezvous on localhost (Gloo) and must train exactly what one node with two
    ranks trains."""
    nodes, one_node = tmp_path / "nodes", tmp_path / "one-node"
    nodes.mkdir(), one_node.mkdir()
    worker = str(Path(__file__).with_name("ddp_worker.py"))
    run = [sys.executable, "-m", "torch.distributed.run"]
    rendezvous = [
        "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", "two-nodes",
    ]  # fmt: skip
    agents = [
        subprocess.Popen(
            [*run, *rendezvous, worker, str(nodes), str(GLOBAL_BATCH)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [agent.communicate(timeout=240) for agent in agents]
    for agent, (_, err) in zip(agents, outputs, strict=True):
        assert agent.returncode == 0, err[-3000:]
    done = _run(
        [*run, "--standalone", "--nproc-per-node", "2", worker, str(one_node), str(GLOBAL_BATCH)]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    across, within = torch.load(nodes / "weights.pt"), torch.load(one_node / "weights.pt")
    for name, tensor in within.items():
        torch.testing.assert_close(across[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
