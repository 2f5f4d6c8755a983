"""What a deployment run built and measured: artifacts with their build evidence (export
parity, int8 accuracy, .ort conversion) and one Target per runtime x artifact.

The seed study's Tables 4 and 5 are rendered from these (harness.deploy_report). Accuracies
here are percent (0-100), as the seed reported them; times are in the unit the key names.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from resnest_bench.harness.results.environment import CgroupLimits
from resnest_bench.harness.results.record import Record
from resnest_bench.harness.results.stats import Stats

ArtifactKind = Literal["state_dict", "onnx_fp32", "onnx_int8", "ort"]


class Throughput(Record):
    """One batch size: images per second at the median batch time, and the batch times (ms)."""

    images_per_s: float
    batch_ms: Stats


class Target(Record):
    """One runtime on one artifact. A skipped target says why and has no measurements.

    latency_ms is batch 1; throughput is keyed by batch size (as a string, JSON's only key
    type); avg_ms_per_image is batch 1 over the timed test images; agreement_top1_pct and
    max_prob_diff compare against PyTorch eager fp32 on the same images.
    """

    target: str
    runtime: str
    artifact: str
    status: Literal["ok", "skipped"]
    reason: str | None = None
    threads: int | None = None
    load_s: float | None = None
    first_inference_s: float | None = None
    latency_ms: Stats | None = None
    throughput: dict[str, Throughput] | None = None
    images_timed: int | None = None
    avg_ms_per_image: float | None = None
    avg_ms_per_image_small: float | None = None
    top1_full: float | None = None
    top1_small: float | None = None
    images_full: int | None = None
    images_small: int | None = None
    agreement_top1_pct: float | None = None
    max_prob_diff: float | None = None
    rss_before_load_bytes: int | None = None
    peak_rss_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Parity(Record):
    """How closely the exported graph reproduces PyTorch on real images (fp32 logits)."""

    images: int
    max_abs_diff: float
    reference_absmax: float  # largest |logit| of PyTorch: the scale a relative tolerance uses
    top1_agreement: float  # fraction in [0, 1]


class ExportRecord(Record):
    """The ONNX export; fallback_reason is set when "auto" could not use the dynamo exporter."""

    path: str
    exporter: str
    opset: int
    size_bytes: int
    parity: Parity
    fallback_reason: str | None = None


class Int8Settings(Record):
    """ORT static quantization knobs (weights always symmetric int8, per tensor or channel)."""

    activations: Literal["uint8", "int8"] = "uint8"
    per_channel: bool = True
    reduce_range: bool = False
    activation_symmetric: bool = False
    quant_format: Literal["qdq", "qoperator"] = "qdq"
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"
    calibration_images: int = 512
    calibration_batch: int = 32


class Int8Attempt(Record):
    """One quantization try: variant, nodes kept fp32, held-out top-1 (%) and its drop."""

    variant: str
    excluded_nodes: int
    top1: float
    drop_pts: float
    accepted: bool


class Int8Record(Record):
    """The shipped int8 model and the evidence for it; within_limit False: no variant kept
    accuracy within max_drop_pts and the least bad one shipped."""

    path: str
    size_bytes: int
    variant: str
    settings: Int8Settings
    fp32_top1: float
    int8_top1: float
    drop_pts: float
    max_drop_pts: float
    within_limit: bool
    heldout_images: int
    calibration_images: int
    excluded_nodes: list[str]
    attempts: list[Int8Attempt]


class OrtRecord(Record):
    """An .ort file: source is the .onnx it came from, optimization the level baked in."""

    path: str
    source: str
    optimization: str
    size_bytes: int


class Pt2eRecord(Record):
    """PyTorch's own int8 path (torchao pt2e): recorded with the reason it was not built."""

    status: Literal["ok", "skipped"]
    reason: str | None = None


class ArtifactsRecord(Record):
    """Deployable files (names within artifacts/), their sizes, and how each was built."""

    files: dict[str, str]
    sizes_bytes: dict[str, int | None]
    int8_vs_state_dict: float | None = None
    export: ExportRecord | None = None
    int8: Int8Record | None = None
    ort: OrtRecord | None = None
    pt2e: Pt2eRecord | None = None


class DeployEnvironment(Record):
    """Threads and limits in force while measuring: the context every number depends on."""

    usable_cpus: int
    threads: int
    cgroup: CgroupLimits
    torch: str | None = None
    onnxruntime: str | None = None
    providers: list[str] = Field(default_factory=list)


class Demo(Record):
    """The seed's Table 4: per-class softmax of one test image, per measured target."""

    index: int
    label: str
    classes: list[str]
    probs: dict[str, list[float]]


class DataUse(Record):
    """Which images each deployment figure came from (int8 calibration from training images,
    accuracy and parity from held-out ones) and the preprocessing every runtime was fed."""

    dataset: str
    calibration: str
    evaluation: str
    mean: list[float]
    std: list[float]
    image_size: int
    preprocessing_from: str


class Deployment(Record):
    """A whole deployment run. `config` is provenance (the deploy section as run)."""

    config: dict[str, Any] = Field(default_factory=dict)
    environment: DeployEnvironment
    artifacts: ArtifactsRecord
    targets: list[Target]
    demo: Demo
    data: DataUse | None = None

    def ok_targets(self) -> list[Target]:
        return [t for t in self.targets if t.ok]
