"""harness.train and harness.gpu.accel on CPU: the tiny model on learnable 8x8 synthetic data.

Every run is a few dozen SGD steps on a few hundred images, so the file stays fast; CUDA-only
paths (NVML, cuDNN, capability checks) are exercised through fakes where that is honest.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from resnest_bench.harness.checkpoints import read_checkpoint
from resnest_bench.harness.config import TrainSection, TransferSection, step_suite
from resnest_bench.harness.data import load_dataset
from resnest_bench.harness.errors import BenchError, GpuRequiredError
from resnest_bench.harness.gpu.accel import Accel, PowerMeter, select_device
from resnest_bench.harness.results.training import EpochRecord, TrainingRun
from resnest_bench.harness.train import (
    CHECKPOINT_NAME,
    EPOCH_LOG_NAME,
    Callbacks,
    create_seeded_model,
    load_transfer_weights,
    summarize,
    train,
)
from resnest_bench.harness.train import loop as loop_mod
from resnest_bench.models.weights import ours_to_external

CLASSES = 4
# Tuned for robustness: final train and test accuracy >= 0.98 for seeds 0-3.
RECIPE = TrainSection(epochs=5, batch_size=32, lr=0.05, milestones=(3,))
CPU = {"device": "cpu", "seed": 0}


def _data(train_images: int = 192, test_images: int = 64, seed: int = 0):
    return load_dataset(
        "synthetic",
        root=Path("unused"),
        train_subset=train_images,
        test_subset=test_images,
        image_size=8,
        num_classes=CLASSES,
        seed=seed,
    )


def _model(seed: int = 0, **overrides):
    return create_seeded_model("resnest-tiny", seed=seed, **{"num_classes": CLASSES, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One full tiny run shared by the tests that only read its outputs."""
    run_dir = tmp_path_factory.mktemp("train") / "run"
    seen: list[EpochRecord] = []
    batches: list[tuple[int, int]] = []
    model = _model()
    result = train(
        model,
        _data(),
        run_dir,
        RECIPE,
        **CPU,
        callbacks=Callbacks(on_epoch_end=seen.append, on_batch=lambda i, n: batches.append((i, n))),
        suite="test",
    )
    return result, model, run_dir, seen, batches


# --- the recipe -------------------------------------------------------------------------------


def test_default_recipes_are_the_seed_studys():
    cifar, transfer = TrainSection(), TransferSection()
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.milestones) == (
        250,
        128,
        0.1,
        (80, 210),
    )
    assert (cifar.momentum, cifar.weight_decay, cifar.gamma) == (0.9, 5e-4, 0.1)
    assert (transfer.epochs, transfer.batch_size, transfer.step_size) == (200, 64, 60)
    # MultiStepLR semantics: milestone 80 is the first epoch (0-based) at the lower LR.
    assert [cifar.lr_at(e) for e in (0, 79, 80, 209, 210)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001]
    )
    assert [transfer.lr_at(e) for e in (59, 60, 120)] == pytest.approx([0.1, 0.01, 0.001])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 2.5),
        ("batch_size", 0),
        ("lr", -0.1),
        ("lr", float("nan")),
        ("momentum", 1.0),
        ("weight_decay", -1e-4),
        ("milestones", (210, 80)),
        ("milestones", (0,)),
        ("milestones", 80),
        ("step_size", 0),
        ("gamma", 0.0),
        ("label_smoothing", 1.0),
    ],
)
def test_bad_recipe_values_name_the_field(field, value):
    with pytest.raises(BenchError, match=rf"train\.{field}: .*got"):
        step_suite("train", {"train": {field: value}})


def test_milestones_and_step_size_exclude_each_other():
    with pytest.raises(BenchError, match="milestones and step_size"):
        step_suite("train", {"train": {"milestones": [10], "step_size": 5}})


def test_bad_options():
    with pytest.raises(BenchError, match="seed"):
        step_suite("train", {"seed": -1})
    with pytest.raises(BenchError, match=r"train\.target_accuracy"):
        step_suite("train", {"train": {"target_accuracy": 1.5}})
    with pytest.raises(BenchError, match=r"train\.precision"):
        step_suite("train", {"train": {"precision": "fp8"}})
    with pytest.raises(BenchError, match="precision"):
        Accel(torch.device("cpu"), precision="fp8")


# --- devices and speed settings ---------------------------------------------------------------


def test_gpu_requested_without_one_fails_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "gpu", "cuda:1"):
        with pytest.raises(GpuRequiredError) as info:
            select_device(name)
        assert "\n" not in str(info.value) and "needs a CUDA GPU" in str(info.value)
    with pytest.raises(GpuRequiredError):
        train(_model(), _data(32, 8), Path("never"), RECIPE, device="cuda", seed=0)
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(BenchError, match="unknown device"):
        select_device("tpu")


def test_precision_settings():
    cpu = torch.device("cpu")
    assert Accel(cpu, precision="fp16").grad_scaler().is_enabled()
    assert not Accel(cpu, precision="bf16").grad_scaler().is_enabled()
    assert Accel(cpu, precision="bf16").autocast_dtype is torch.bfloat16
    assert Accel(cpu, precision="tf32").autocast_dtype is None
    Accel(cpu, precision="fp32").configure_backends()
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.allow_tf32
    Accel(cpu, precision="tf32").configure_backends()
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    Accel(cpu).configure_backends()
    assert Accel(cpu).describe().peak_flops is None
    with pytest.raises(BenchError, match="compile mode"):
        Accel(cpu, compile=True, compile_mode="fastest")


class _FakeNvml:
    """Counts energy in mJ like NVML on Volta+, or refuses as on a K80 (power only)."""

    def __init__(self, counter: bool) -> None:
        self.counter, self.energy_mj = counter, 1_000_000.0

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.counter:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        self.energy_mj += 5_000.0
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle):
        return 250_000  # mW


def test_power_meter_counter_and_sampled():
    meter = PowerMeter(_FakeNvml(counter=True), handle=None)
    meter.start()
    reading = meter.stop()
    assert reading.method == "counter" and reading.joules == pytest.approx(5.0)
    meter = PowerMeter(_FakeNvml(counter=False), handle=None, interval_s=0.005)
    meter.start()
    import time

    time.sleep(0.05)
    reading = meter.stop()
    assert reading.method == "sampled" and reading.mean_watts == pytest.approx(250.0)
    assert reading.joules == pytest.approx(250.0 * 0.05, rel=0.5)
    assert PowerMeter.for_device(torch.device("cpu")) is None


# --- the training loop ------------------------------------------------------------------------


def test_tiny_model_learns(trained):
    result, _, _, seen, batches = trained
    final = result.epochs[-1]
    assert final.train_acc >= 0.9 and final.test_top1 >= 0.9
    assert result.epochs[0].train_acc < final.train_acc
    assert [r.lr for r in result.epochs] == pytest.approx([0.05] * 3 + [0.005] * 2)
    assert seen == result.epochs
    per_epoch = 192 // 32
    assert batches[:per_epoch] == [(i, per_epoch) for i in range(1, per_epoch + 1)]
    assert len(batches) == per_epoch * RECIPE.epochs


def test_records_and_summary(trained):
    result, _, _, _, _ = trained
    records, summary = result.epochs, result.summary
    assert [r.epoch for r in records] == [1, 2, 3, 4, 5]
    assert [r.warmup for r in records] == [True] + [False] * 4
    for r in records:
        assert r.images == 192 and r.images_per_s == pytest.approx(192 / r.train_s)
        assert r.peak_memory_bytes is None and r.energy_j is None and r.mfu is None
        assert r.flops_per_s == pytest.approx(result.model.flops_per_train_image * 192 / r.train_s)
    assert result.model.flops_per_train_image == 6 * result.model.macs > 0
    assert summary.first_epoch_s == records[0].train_s
    assert summary.steady_epoch_s.n == 4
    assert summary.total_train_s == pytest.approx(records[-1].cumulative_train_s)
    assert summary.final_test_top1 == records[-1].test_top1
    assert result.batch_size == 32 and result.failed_batch_sizes == []
    assert result.dataset.synthetic is True and result.dataset.train_images == 192


def _record(epoch: int, train_s: float, top1: float, cumulative: float) -> EpochRecord:
    return EpochRecord(
        epoch=epoch,
        batch_size=32,
        lr=0.1,
        warmup=epoch == 1,
        train_s=train_s,
        eval_s=1.0,
        cumulative_train_s=cumulative,
        images=100,
        images_per_s=100.0 / train_s,
        train_loss=1.0,
        train_acc=0.5,
        weights_finite=True,
        test_loss=1.0,
        test_top1=top1,
        peak_memory_bytes=None,
        energy_j=None,
        mean_power_w=None,
        energy_method=None,
        flops_per_s=1.0,
        mfu=None,
    )


def test_summary_time_to_target():
    records = [
        _record(1, 30.0, 0.5, 30.0),
        _record(2, 10.0, 0.9, 40.0),
        _record(3, 12.0, 0.95, 52.0),
    ]
    summary = summarize(records, epochs_planned=3, target=0.89)
    assert summary.time_to_target_s == 40.0 and summary.epochs_to_target == 2
    assert summary.first_epoch_s == 30.0 and summary.steady_epoch_s.median == 11.0
    assert summary.best_epoch == 3 and summary.diverged_at_epoch is None
    assert summarize(records, epochs_planned=3, target=0.99).time_to_target_s is None


def test_an_epoch_over_one_and_a_half_times_the_steady_median_is_flagged():
    """The issue's case: one of four epochs took 305 s against a 103-151 s median."""
    times = [160.0, 103.0, 151.0, 305.0, 120.0]
    records = [_record(i + 1, t, 0.5, sum(times[: i + 1])) for i, t in enumerate(times)]
    summary = summarize(records, epochs_planned=5, target=0.89)
    assert summary.steady_epoch_s.median == 135.5 and summary.slow_epochs == [4]
    mild = [_record(i + 1, t, 0.5, 0.0) for i, t in enumerate([160.0, 103.0, 151.0, 226.0])]
    assert summarize(mild, epochs_planned=4, target=0.89).slow_epochs == []  # 226 < 1.5 x 151


def test_cpu_training_threads_follow_the_host(monkeypatch):
    from resnest_bench.harness.measure import threads

    monkeypatch.setattr(threads, "usable_cpus", lambda limits=None: 2)
    monkeypatch.setattr(threads, "shared_reason", lambda count: None)
    assert threads.training_threads(None) == (2, "2 threads (usable CPUs; host not shared)")
    monkeypatch.setattr(threads, "shared_reason", lambda count: "load average 9.00 on 2 CPUs")
    count, why = threads.training_threads(None)
    assert count == 1 and why.startswith("1 thread: host shared (load average 9.00 on 2 CPUs)")
    assert threads.training_threads(3) == (3, "3 threads (the suite's train.threads)")


def test_result_round_trips_json(trained):
    result, _, _, _, _ = trained
    text = result.model_dump_json()
    assert TrainingRun.model_validate_json(text) == result
    out = json.loads(text)
    assert out["config"] == {"suite": "test"}
    assert out["recipe"]["milestones"] == [3] and out["options"]["precision"] == "auto"
    assert out["accel"]["precision"] == "fp32" and out["accel"]["precision_reason"].startswith(
        "auto: CPU"
    )
    assert out["options"]["target_top1"] == RECIPE.target_accuracy
    assert out["options"]["device"] == "cpu" and out["options"]["seed"] == 0
    assert out["model"]["name"] == "resnest-tiny" and out["model"]["num_classes"] == CLASSES
    assert out["files"] == {"checkpoint": CHECKPOINT_NAME, "epoch_log": EPOCH_LOG_NAME}


def test_epoch_log_and_checkpoint(trained):
    result, model, run_dir, _, _ = trained
    lines = (run_dir / EPOCH_LOG_NAME).read_text().splitlines()
    assert [EpochRecord.model_validate_json(line) for line in lines] == result.epochs
    assert lines == [r.model_dump_json() for r in result.epochs]
    ckpt = read_checkpoint(run_dir / CHECKPOINT_NAME)
    assert ckpt.epoch == 5 and list(ckpt.records) == result.epochs
    assert ckpt.model_config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(ckpt.state["model"][key], value)
    raw = torch.load(run_dir / CHECKPOINT_NAME, weights_only=True)
    assert {"optimizer", "scaler", "rng", "model_config"} <= set(raw)
    # The model config is stored once, as a dict: nothing else in the file repeats it.
    assert "model" not in raw["identity"] and isinstance(raw["identity"], dict)


def test_existing_checkpoint_needs_resume(trained):
    _, _, run_dir, _, _ = trained
    with pytest.raises(BenchError, match="resume"):
        train(_model(), _data(), run_dir, RECIPE, **CPU)
    with pytest.raises(BenchError, match=r"different recipe.lr \(0.05, now 0.1\)"):
        other = RECIPE.model_copy(update={"lr": 0.1})
        train(_model(), _data(), run_dir, other, **CPU, resume=True)
    with pytest.raises(BenchError, match=r"different model.radix \(2, now 1\)"):
        train(_model(radix=1), _data(), run_dir, RECIPE, **CPU, resume=True)


class Killed(Exception):
    """What a killed process leaves: the epochs it finished, nothing after."""


def _train_killed_after(epoch, data, run_dir, recipe, look=lambda record: None) -> None:
    """Train a fresh model in `run_dir` and stop it once `epoch` ends (look(record) first)."""

    def kill(record):
        look(record)
        if record.epoch == epoch:
            raise Killed

    with pytest.raises(Killed):
        train(_model(), data, run_dir, recipe, **CPU, callbacks=Callbacks(on_epoch_end=kill))


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    recipe = TrainSection(epochs=3, batch_size=16, lr=0.05, milestones=(2,))
    data = _data(64, 16)
    straight = _model()
    expected = train(straight, data, tmp_path / "straight", recipe, **CPU)

    _train_killed_after(2, data, tmp_path / "killed", recipe)
    torch.manual_seed(12345)  # a new process: other RNG state, other initial weights
    resumed_model = _model(seed=99)
    resumed = train(resumed_model, data, tmp_path / "killed", recipe, **CPU, resume=True)
    assert resumed.resumed_from_epoch == 2
    assert [r.warmup for r in resumed.epochs] == [True, False, True]
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[key], value), key
    for a, b in zip(expected.epochs, resumed.epochs, strict=True):
        assert (a.train_loss, a.test_top1, a.lr) == (b.train_loss, b.test_top1, b.lr)
    log = (tmp_path / "killed" / EPOCH_LOG_NAME).read_text().splitlines()
    assert len(log) == 3


def test_checkpoint_every_n_epochs_and_the_last_resumes_exactly(tmp_path):
    recipe = TrainSection(epochs=4, batch_size=16, lr=0.05, milestones=(2,), checkpoint_every=2)
    data = _data(64, 16)
    straight = _model()
    expected = train(straight, data, tmp_path / "straight", recipe, **CPU)
    assert expected.options.checkpoint_every == 2
    assert read_checkpoint(tmp_path / "straight" / CHECKPOINT_NAME).epoch == 4  # the last

    on_disk: list[int | None] = []

    def look(record):
        path = tmp_path / "killed" / CHECKPOINT_NAME
        on_disk.append(read_checkpoint(path).epoch if path.exists() else None)

    _train_killed_after(3, data, tmp_path / "killed", recipe, look)
    assert on_disk == [None, 2, 2]
    resumed_model = _model(seed=99)
    other_cadence = recipe.model_copy(update={"checkpoint_every": 1})  # not part of the recipe
    resumed = train(resumed_model, data, tmp_path / "killed", other_cadence, **CPU, resume=True)
    assert resumed.resumed_from_epoch == 2
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[key], value), key
    assert expected.options.threads_reason == "pinned by the tests"
    assert resumed.options.cpu_threads == 1  # the first part's count, from its checkpoint
    assert resumed.options.threads_reason == "1 threads (kept from the run being resumed)"
    log = (tmp_path / "killed" / EPOCH_LOG_NAME).read_text().splitlines()
    assert len(log) == 4


def test_out_of_memory_names_the_batch_size_or_halves_it(tmp_path, monkeypatch):
    real_step = loop_mod._train_step
    calls = {"big": 0}

    def step_that_fits_eight(model, x, *args):
        if len(x) > 8:
            calls["big"] += 1
            if calls["big"] % 2 == 0:  # one real update first, so a restart must undo it
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_step(model, x, *args)

    monkeypatch.setattr(loop_mod, "_train_step", step_that_fits_eight)
    recipe = TrainSection(epochs=1, batch_size=32, lr=0.05, milestones=())
    data = _data(64, 16)
    with pytest.raises(BenchError, match="out of GPU memory at batch size 32"):
        train(_model(), data, tmp_path / "a", recipe, **CPU)

    auto = _model()
    result = train(
        auto, data, tmp_path / "b", recipe.model_copy(update={"auto_batch": True}), **CPU
    )
    assert result.batch_size == 8 and result.failed_batch_sizes == [32, 16]
    assert result.epochs[0].batch_size == 8 and result.model_dump()["batch_size"] == 8

    direct = _model()
    train(direct, data, tmp_path / "c", recipe.model_copy(update={"batch_size": 8}), **CPU)
    for key, value in direct.state_dict().items():
        assert torch.equal(auto.state_dict()[key], value), key


def test_bf16_autocast_trains_on_cpu(tmp_path):
    recipe = TrainSection(
        epochs=1, batch_size=16, lr=0.05, milestones=(), precision="bf16", channels_last=True
    )
    result = train(_model(), _data(64, 16), tmp_path / "r", recipe, **CPU)
    record = result.epochs[0]
    assert math.isfinite(record.train_loss) and record.weights_finite
    assert result.accel.precision == "bf16" and result.accel.channels_last is True


def test_divergence_stops_the_run(tmp_path):
    recipe = TrainSection(epochs=4, batch_size=16, lr=1e30, milestones=())
    result = train(_model(), _data(64, 16), tmp_path / "r", recipe, **CPU)
    assert result.summary.diverged_at_epoch == 1 and len(result.epochs) == 1
    assert TrainingRun.model_validate_json(result.model_dump_json()) == result


# --- transfer ---------------------------------------------------------------------------------


def test_transfer_from_our_checkpoint_keeps_body_and_replaces_head(trained):
    _, source_model, run_dir, _, _ = trained
    target = _model(seed=7)
    init = load_transfer_weights(target, run_dir / CHECKPOINT_NAME, num_classes=6, seed=0)
    assert init.source == "ours" and init.skipped == ["fc."]
    assert target.get_classifier().out_features == 6 and target.config.num_classes == 6
    source = source_model.state_dict()
    for key, value in target.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, source[key]), key
    assert init.model_dump()["skipped"] == ["fc."]


def test_transfer_from_official_imagenet_weights_skips_a_different_stem(tmp_path):
    imagenet = _model(seed=3, stem="imagenet", num_classes=1000)
    external = {ours_to_external(k): v for k, v in imagenet.state_dict().items()}
    path = tmp_path / "official.pth"
    torch.save(external, path)
    target = _model(seed=4)  # cifar stem
    before = {k: v.clone() for k, v in target.state_dict().items()}
    init = load_transfer_weights(target, path, num_classes=100, seed=0)
    assert init.source == "official" and init.skipped == ["fc.", "stem."]
    assert target.get_classifier().out_features == 100
    for key, value in target.state_dict().items():
        if key.startswith("stages."):
            assert torch.equal(value, imagenet.state_dict()[key]), key
    assert torch.equal(target.state_dict()["stem.0.weight"], before["stem.0.weight"])

    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(BenchError, match="cannot read weights"):
        load_transfer_weights(_model(), broken, num_classes=10, seed=0)


def test_dataset_and_model_classes_must_agree(tmp_path):
    with pytest.raises(BenchError, match="10 outputs but dataset synthetic has 4"):
        train(create_seeded_model("resnest-tiny", seed=0), _data(32, 8), tmp_path, RECIPE, **CPU)
