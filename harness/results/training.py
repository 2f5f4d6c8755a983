"""What a training (or fine-tuning) run measured: per-epoch records, their summary, and the
recipe, speed settings, hardware, data and model they were measured with.

The seed study's Tables 2 and 3 are rendered from these (harness.report.run); `epochs` is also
the per-epoch log (one EpochRecord per line of epochs.jsonl).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from resnest_bench.harness.results.record import Record
from resnest_bench.harness.results.stats import Stats

Precision = Literal["fp32", "tf32", "bf16", "fp16"]
# What a suite asks for: a precision, or "auto" (resolved per device; AccelInfo says what ran)
RequestedPrecision = Literal["auto", "fp32", "tf32", "bf16", "fp16"]


class Recipe(Record):
    """What was learnt with: optimiser and LR schedule (train.* / transfer.* of the suite)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    milestones: list[int]
    step_size: int | None
    gamma: float
    label_smoothing: float
    flip: bool = True  # augmentation; results before these fields always used flip, pad 4
    crop_padding: int = 4

    @classmethod
    def of(cls, section: Any) -> Recipe:
        """The recipe part of a TrainSection (or TransferSection)."""
        return cls(**{name: getattr(section, name) for name in cls.model_fields})


class RunOptions(Record):
    """How it was run: device, speed settings, seed, target accuracy, OOM policy."""

    device: str
    precision: RequestedPrecision
    channels_last: bool
    compile: bool | Literal["auto"]  # as asked; the Accel record says what it resolved to
    compile_mode: str
    seed: int
    target_top1: float
    auto_batch: bool
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch always has one)
    cpu_threads: int | None = None  # intra-op threads of CPU training (None: a GPU run)
    threads_reason: str | None = None  # why that many (measure.threads.training_threads)

    @classmethod
    def of(cls, section: Any, *, device: str, seed: int) -> RunOptions:
        """The run options of a TrainSection on `device` with `seed`."""
        return cls(
            device=device,
            precision=section.precision,
            channels_last=section.channels_last,
            compile=section.compile,
            compile_mode=section.compile_mode,
            seed=seed,
            target_top1=section.target_accuracy,
            auto_batch=section.auto_batch,
            checkpoint_every=section.checkpoint_every,
        )


class AccelInfo(Record):
    """The speed settings in force on the device (harness.gpu.accel.Accel.describe()).

    precision is what ran and precision_reason why (auto: the card's tensor cores; or as
    requested); cudnn_enabled is False where cuDNN has no kernels for the GPU (Kepler)."""

    device: str
    device_name: str
    precision: Precision
    precision_reason: str | None = None
    channels_last: bool
    compile: bool
    compile_mode: str | None
    cudnn_benchmark: bool
    cudnn_enabled: bool = True
    peak_flops: float | None
    fused_optimizer: bool | None = None  # SGD as one fused kernel per step (None: not recorded)


class DatasetInfo(Record):
    """The data a run learnt from; mean/std/classes are the preprocessing its checkpoint
    carries, train_split/test_split say which images trained and which were held out."""

    name: str
    synthetic: bool
    source: str
    num_classes: int
    image_size: int
    train_images: int
    test_images: int
    mean: list[float] | None = None
    std: list[float] | None = None
    classes: list[str] | None = None
    train_split: str | None = None
    test_split: str | None = None
    held_out_by: str | None = None  # a flat folder's draw (seed, val_fraction)


class ModelInfo(Record):
    """The network trained; macs at its input size, flops_per_train_image = 3 x 2 x macs."""

    name: str
    block: Literal["bottleneck", "basic"]
    stem: Literal["imagenet", "cifar"]
    radix: int
    cardinality: int
    num_classes: int
    params: int
    macs: int
    flops_per_train_image: int


class WeightsInit(Record):
    """Where a fine-tuned model's body came from; `skipped` key prefixes kept their fresh init
    ("fc." always, "stem." when the stem kinds differ)."""

    path: str
    source: str
    skipped: list[str]


class EpochRecord(Record):
    """One epoch. train_s is device-synchronised training time (evaluation excluded, eval_s);
    epoch 1 is `warmup` (compile, autotune). Losses are None when they were not finite."""

    epoch: int
    batch_size: int
    lr: float
    warmup: bool
    train_s: float
    eval_s: float
    cumulative_train_s: float
    images: int
    images_per_s: float
    train_loss: float | None
    train_acc: float
    weights_finite: bool
    test_loss: float | None
    test_top1: float
    peak_memory_bytes: int | None
    energy_j: float | None
    mean_power_w: float | None
    energy_method: Literal["counter", "sampled"] | None
    flops_per_s: float
    mfu: float | None
    # Data-parallel runs: images, images_per_s and losses are over all ranks, train_s the
    # slowest rank's; rank_images_per_s each rank's own share (a straggler shows here).
    world_size: int = 1
    rank_images_per_s: list[float] | None = None
    # CPU used by other processes during the epoch (hostload), in cores; None: not measurable
    other_cores: float | None = None


class DistributedRun(Record):
    """How a data-parallel (torchrun) run split its work: batch_size is per rank, the global
    batch ranks x batch_size; lr is the recipe's lr after the scaling rule."""

    world_size: int
    backend: str
    batch_size: int
    global_batch_size: int
    lr_scaling: str
    lr: float
    sync_batchnorm: bool


class TrainSummary(Record):
    """Epoch 1 apart, steady state over the rest; time to target counts training time only."""

    epochs_planned: int
    epochs_completed: int
    first_epoch_s: float | None
    steady_epoch_s: Stats | None
    steady_images_per_s: float | None
    steady_mfu: float | None
    target_top1: float
    time_to_target_s: float | None
    epochs_to_target: int | None
    best_test_top1: float | None
    best_epoch: int | None
    final_test_top1: float | None
    total_train_s: float
    total_eval_s: float
    total_energy_j: float | None
    diverged_at_epoch: int | None
    # epochs (warm-up excluded) that took more than SLOW_EPOCH x the steady median: a busy
    # host's mark on the steady-state figure, said in the report
    slow_epochs: list[int] = Field(default_factory=list)


class TrainingFiles(Record):
    """File names (in the run's work directory) of the checkpoint and the per-epoch log."""

    checkpoint: str
    epoch_log: str


class TrainingRun(Record):
    """Everything one training run measured. `config` is provenance only (suite name etc.)."""

    config: dict[str, Any] = Field(default_factory=dict)
    recipe: Recipe
    options: RunOptions
    accel: AccelInfo
    dataset: DatasetInfo
    model: ModelInfo
    batch_size: int
    failed_batch_sizes: list[int] = Field(default_factory=list)
    init: WeightsInit | None = None
    resumed_from_epoch: int | None = None
    distributed: DistributedRun | None = None
    epochs: list[EpochRecord]
    summary: TrainSummary
    files: TrainingFiles


class Training(Record):
    """The training section of a result: the CIFAR-10 runs, then the transfer run if any."""

    runs: list[TrainingRun] = Field(default_factory=list)
    transfer: TrainingRun | None = None

    def all_runs(self) -> list[TrainingRun]:
        return self.runs + ([self.transfer] if self.transfer else [])
