"""What a deployment run built and measured: artifacts with their build evidence (export
parity, int8 accuracy, .ort conversion) and one Target per runtime x artifact.

The seed study's Tables 4 and 5 are rendered from these (harness.report.deployment). Accuracies
here are percent (0-100), as the seed reported them; times are in the unit the key names.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from resnest_bench.harness.host.load import HostLoad
from resnest_bench.harness.results.crosscheck import Crosscheck
from resnest_bench.harness.results.environment import CgroupLimits
from resnest_bench.harness.results.record import Record
from resnest_bench.harness.results.stats import RoundRatio, Stats


class Throughput(Record):
    """One batch size: images per second at the median batch time, and the batch times (ms)."""

    images_per_s: float
    batch_ms: Stats


class Speedup(RoundRatio):
    """Speed-up over the reference (reference / target per round). `against` is PyTorch
    eager fp32, or the next target when eager failed."""

    against: str = "torch-eager:fp32"


class Target(Record):
    """One runtime on one artifact. A skipped target says why and has no measurements; a
    failed one (its process raised or died) says why in one line and keeps no figures.

    latency_ms is batch 1; throughput is keyed by batch size (as a string, JSON's only key
    type); avg_ms_per_image is batch 1 over the timed test images; agreement_top1_pct and
    max_prob_diff compare against PyTorch eager fp32 on the same images.
    """

    target: str
    runtime: str
    artifact: str
    status: Literal["ok", "skipped", "failed"]
    reason: str | None = None
    threads: int | None = None
    batching: str | None = None  # how a batch ran when not as one call ("N x batch 1")
    speedup: Speedup | None = None
    flag: str | None = None  # why this row's own figures contradict each other (hostload)
    load_s: float | None = None
    first_inference_s: float | None = None
    latency_ms: Stats | None = None
    throughput: dict[str, Throughput] | None = None
    throughput_limit: str | None = None  # why larger batches have no figure (out of memory)
    device: str | None = None  # where the model ran: "cpu", "cuda:N"
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
    gops: float | None = None  # achieved at batch 1: 2 x model MACs / latency median
    peak_pct: float | None = None  # gops as a share of the CPU's peak for its precision

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


class Int8Scheme(Record):
    """How ORT stores and multiplies int8: activation and weight types, 7-bit weights or not."""

    name: str  # "u8s8", "u8s8-reduce-range", "u8u8"
    activations: Literal["uint8", "int8"]
    weights: Literal["int8", "uint8"]
    reduce_range: bool


class Int8Settings(Record):
    """How a quantizer was asked to work, and the schemes this CPU is offered (in the order
    tried) with the reason drawn from its instruction set (empty where the runtime picks its
    own kernels, as OpenVINO does)."""

    method: str = "ONNX Runtime static quantization"
    quant_format: str
    per_channel: bool
    calibration: str
    calibration_images: int
    schemes: list[Int8Scheme]
    scheme_reason: str


class Int8Attempt(Record):
    """One quantization try: scheme, which nodes stayed fp32, held-out top-1 (%) and its drop,
    its file's size and the seconds it took to build and score (its cost); no figures and the
    one-line `error` when it could not be built or loaded."""

    variant: str  # scheme name, plus "+N-most-sensitive-fp32" (older runs: "+attention-fp32")
    excluded_nodes: int
    top1: float | None
    drop_pts: float | None
    accepted: bool
    error: str | None = None
    kept_fp32: list[str] = Field(default_factory=list)  # the layers it left unquantized
    size_bytes: int | None = None
    seconds: float | None = None


class Int8Record(Record):
    """The int8 model and the evidence for it. within_limit False: no variant kept accuracy
    within max_drop_pts; the least lossy one was built and measured, and it ships only if the
    user allowed the loss (allowed_loss), else the run ends non-zero after its report."""

    path: str
    size_bytes: int
    variant: str
    settings: Int8Settings
    fp32_top1: float
    int8_top1: float
    drop_pts: float
    max_drop_pts: float
    within_limit: bool
    allowed_loss: bool = False
    heldout_images: int
    calibration_images: int
    excluded_nodes: list[str]
    attempts: list[Int8Attempt]

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Results before int8 schemes recorded ORT's knobs flat (activations, reduce_range):
        their one scheme is rebuilt from them; an out-of-limit model then always shipped."""
        old = data.get("settings") if isinstance(data, dict) else None
        if not isinstance(old, dict) or "schemes" in old:
            return data
        scheme = {
            "name": "u8s8" + ("-reduce-range" if old.get("reduce_range") else ""),
            "activations": old.get("activations", "uint8"),
            "weights": "int8",
            "reduce_range": bool(old.get("reduce_range")),
        }
        settings = {
            "quant_format": old.get("quant_format", "qdq"),
            "per_channel": old.get("per_channel", True),
            "calibration": old.get("calibration", "minmax"),
            "calibration_images": old.get("calibration_images", data.get("calibration_images")),
            "schemes": [scheme],
            "scheme_reason": "recorded before schemes were chosen per CPU",
        }
        return {**data, "settings": settings, "allowed_loss": not data.get("within_limit", True)}

    @property
    def rejected(self) -> bool:
        """Outside the accuracy limit and not allowed by the user: must not be shipped."""
        return not self.within_limit and not self.allowed_loss


class OrtRecord(Record):
    """An .ort file: source is the .onnx it came from, optimization the level baked in."""

    path: str
    source: str
    optimization: str
    size_bytes: int


class DelegateCoverage(Record):
    """How much of one artifact's graph a runtime's accelerated delegate runs (XNNPACK for
    ExecuTorch and LiteRT); `fallback` counts, per op name, what runs in reference kernels."""

    delegate: str
    delegated_ops: int
    total_ops: int
    fallback: dict[str, int] = Field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        return self.delegated_ops / self.total_ops if self.total_ops else None


class ConvertedRecord(Record):
    """One runtime's own model files (OpenVINO IR, ExecuTorch .pte, LiteRT .tflite): the fp32
    conversion, its gated int8 twin, and per artifact kind what its delegate covers."""

    version: str
    fp32_path: str
    fp32_size_bytes: int
    fp32_top1: float
    int8: Int8Record
    coverage: dict[str, DelegateCoverage] = Field(default_factory=dict)
    parity: Parity | None = None  # fp32 file vs PyTorch, where converted from PyTorch itself
    batching: str | None = None  # how a batch of N runs, where the file fixes its batch


class ArtifactsRecord(Record):
    """Deployable files (names within artifacts/), their sizes, and how each was built."""

    files: dict[str, str]
    sizes_bytes: dict[str, int | None]
    int8_vs_state_dict: float | None = None
    export: ExportRecord | None = None
    int8: Int8Record | None = None
    ort: OrtRecord | None = None
    openvino: ConvertedRecord | None = None
    executorch: ConvertedRecord | None = None
    litert: ConvertedRecord | None = None
    skipped: dict[str, str] = Field(default_factory=dict)  # artifact kind -> why not built
    failed: dict[str, str] = Field(default_factory=dict)  # artifact kind -> why its build failed

    def converted(self) -> dict[str, ConvertedRecord]:
        """The runtimes' own conversions that were built, by runtime name."""
        built = {"openvino": self.openvino, "executorch": self.executorch, "litert": self.litert}
        return {name: record for name, record in built.items() if record is not None}

    def int8_records(self) -> list[Int8Record]:
        """Every gated int8 model of the run (ONNX Runtime's, then each conversion's)."""
        own = [self.int8] if self.int8 else []
        return own + [record.int8 for record in self.converted().values()]

    def int8_by_kind(self) -> dict[str, Int8Record]:
        """The gated int8 record behind each int8 artifact kind a target runs (the .ort file
        is ONNX Runtime's int8 graph, so it shares that record)."""
        kinds = {"onnx_int8": self.int8, "ort": self.int8 if self.ort else None}
        kinds |= {f"{name}_int8": record.int8 for name, record in self.converted().items()}
        return {kind: record for kind, record in kinds.items() if record is not None}

    @model_validator(mode="before")
    @classmethod
    def _drop_pt2e(cls, data: Any) -> Any:
        """Older results carried a "pt2e" record that only ever said "skipped"."""
        if isinstance(data, dict) and "pt2e" in data:
            return {k: v for k, v in data.items() if k != "pt2e"}
        return data


class ThreadPolicy(Record):
    """How the runtimes were told to use the CPU (harness.measure.threads): intra-op threads,
    whether ONNX Runtime's idle workers spin, and torch's OpenMP wait policy (None: unset, the
    library's default), with why."""

    threads: int
    ort_spinning: bool
    omp_wait_policy: Literal["PASSIVE", "ACTIVE"] | None = None
    reason: str


class HostCheck(Record):
    """The host's load over the whole timing (before -> after) and per round, and the
    verdict: trustworthy False when the host was busy or a row's figures disagree."""

    overall: HostLoad | None = None
    rounds: list[HostLoad] = Field(default_factory=list)
    busy: bool | None = None
    trustworthy: bool | None = None
    reasons: list[str] = Field(default_factory=list)
    # the targets timed together, when they did not all fit in memory at once (the reference
    # is in every group); one group, or none recorded: all side by side
    groups: list[list[str]] = Field(default_factory=list)


class CpuPeak(Record):
    """This CPU's paper peak in GOP/s per precision (fp32, int8, bf16) on the measuring
    threads' cores, and how it was derived (harness.host.peak)."""

    gops: dict[str, float]
    how: str


class DeployEnvironment(Record):
    """Threads and limits in force while measuring: the context every number depends on."""

    usable_cpus: int
    threads: int
    cgroup: CgroupLimits
    thread_policy: ThreadPolicy | None = None
    torch: str | None = None
    onnxruntime: str | None = None
    providers: list[str] = Field(default_factory=list)
    cpu_peak: CpuPeak | None = None


class Demo(Record):
    """The seed's Table 4: per-class softmax of one test image, per measured target."""

    index: int
    label: str
    classes: list[str]
    probs: dict[str, list[float]]


class DataUse(Record):
    """Which images each deployment figure came from (int8 calibration from training images,
    accuracy and parity from held-out ones; `calibration` is "none" when no int8 model was
    built) and the preprocessing every runtime was fed."""

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
    rounds: int | None = None  # interleaved timing rounds (harness.rounds)
    host: HostCheck | None = None
    data: DataUse | None = None
    crosscheck: Crosscheck | None = None  # each CPU target beside its independent peer
    macs: int | None = None  # of one batch-1 forward pass of the deployed model

    def flag(self, target: Target) -> str | None:
        """Why a row's figures are not comparable: they contradict each other (Target.flag), or
        its harness figure is too far from its independent peer's (the cross-check)."""
        checked = self.crosscheck.flags().get(target.target) if self.crosscheck else None
        parts = [target.flag, f"cross-check: {checked}" if checked else None]
        return "; ".join(p for p in parts if p) or None

    @field_validator("config")
    @classmethod
    def _limit_is_a_number(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The one key reports read from this free-form record (the shipping limit)."""
        limit = config.get("int8_max_drop", 0.0)
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit != limit:
            raise ValueError("config.int8_max_drop must be a number")
        return config

    def ok_targets(self) -> list[Target]:
        return [t for t in self.targets if t.ok]
