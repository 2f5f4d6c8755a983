"""Known GPUs and the decisions the harness makes from them, without needing one (no torch).

One table serves MFU (peak FLOP/s per precision), `plan` (what a suite would do on a named GPU),
the launcher (which image a compute capability and driver can run) and the precision policy.
Peaks are dense (no 2:4 sparsity) datasheet figures; a GPU not in the table gets None, never a
guess. Names are matched on whole tokens, so "RTX A1000" is not an A100, "GB200" is not a B200
and a "V100S" is not a V100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from resnest_bench.harness.gpu.kernels import Kernels

_T = 1e12


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model (one variant: SXM, PCIe, NVL where their peaks differ)."""

    name: str  # how `plan --gpu` names it: "H100 SXM"
    model: str  # the model token in the device name: "H100"
    variant: str | None  # a token that must also appear ("PCIE", "NVL"), None: the default form
    compute_capability: tuple[int, int]
    memory_gib: int
    memory_gbps: float  # memory bandwidth, GB/s (datasheet; 0: unknown)
    peak_flops: dict[str, float] = field(repr=False)  # empty: no datasheet figure, no MFU
    mig: str | None = None  # the MIG profile ("1g.10gb") when this is a slice of the GPU

    @property
    def sm(self) -> str:
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"


def _peaks(fp32: float, tf32: float | None, fp16: float, bf16: float | None) -> dict[str, float]:
    """Per precision in TFLOP/s; pre-Ampere has no TF32 (the switch is a no-op: fp32 rate)."""
    out = {"fp32": fp32 * _T, "tf32": (tf32 or fp32) * _T, "fp16": fp16 * _T}
    if bf16 is not None:
        out["bf16"] = bf16 * _T
    return out


# A K80 is two GK210 dies and each die is one CUDA device: its figures are per die. Columns:
# name, model token, variant token, compute capability, memory GiB, memory GB/s, dense peaks
# (fp32, tf32, fp16, bf16 TFLOP/s), all from NVIDIA's datasheets (A100: the 80 GB SXM form).
GPUS: tuple[GpuSpec, ...] = (
    GpuSpec("K80", "K80", None, (3, 7), 12, 240, _peaks(4.37, None, 4.37, None)),
    GpuSpec("P100 PCIe", "P100", "PCIE", (6, 0), 16, 732, _peaks(9.3, None, 18.7, None)),
    GpuSpec("P100 SXM2", "P100", None, (6, 0), 16, 732, _peaks(10.6, None, 21.2, None)),
    GpuSpec("V100 PCIe", "V100", "PCIE", (7, 0), 16, 900, _peaks(14.0, None, 112, None)),
    GpuSpec("V100 SXM2", "V100", None, (7, 0), 16, 900, _peaks(15.7, None, 125, None)),
    GpuSpec("V100S", "V100S", None, (7, 0), 32, 1134, _peaks(16.4, None, 130, None)),
    GpuSpec("T4", "T4", None, (7, 5), 16, 320, _peaks(8.1, None, 65, None)),
    GpuSpec("A10", "A10", None, (8, 6), 24, 600, _peaks(31.2, 62.5, 125, 125)),
    GpuSpec("A30", "A30", None, (8, 0), 24, 933, _peaks(10.3, 82, 165, 165)),
    GpuSpec("A40", "A40", None, (8, 6), 48, 696, _peaks(37.4, 74.8, 149.7, 149.7)),
    GpuSpec("A100", "A100", None, (8, 0), 80, 2039, _peaks(19.5, 156, 312, 312)),
    GpuSpec("L4", "L4", None, (8, 9), 24, 300, _peaks(30.3, 60, 121, 121)),
    GpuSpec("L40", "L40", None, (8, 9), 48, 864, _peaks(90.5, 90.5, 181, 181)),
    GpuSpec("L40S", "L40S", None, (8, 9), 48, 864, _peaks(91.6, 183, 362, 362)),
    GpuSpec("H100 PCIe", "H100", "PCIE", (9, 0), 80, 2000, _peaks(51, 378, 756, 756)),
    GpuSpec("H100 NVL", "H100", "NVL", (9, 0), 94, 3900, _peaks(60, 417.5, 835.5, 835.5)),
    GpuSpec("H100 SXM", "H100", None, (9, 0), 80, 3350, _peaks(67, 495, 989, 989)),
    GpuSpec("H200 NVL", "H200", "NVL", (9, 0), 141, 4800, _peaks(60, 417.5, 835.5, 835.5)),
    GpuSpec("H200", "H200", None, (9, 0), 141, 4800, _peaks(67, 495, 989, 989)),
    GpuSpec("B200", "B200", None, (10, 0), 180, 8000, _peaks(75, 1100, 2250, 2250)),
    # Known by name, capability, memory and bandwidth only (NVIDIA's capability list and product
    # pages); no dense-peak datasheet figure is on record here: MFU stays None, not a guess.
    GpuSpec("A10G", "A10G", None, (8, 6), 24, 600, {}),
    GpuSpec("RTX 3090", "3090", "RTX", (8, 6), 24, 936, {}),
    GpuSpec("RTX 4090", "4090", "RTX", (8, 9), 24, 1008, {}),
    GpuSpec("H800", "H800", None, (9, 0), 80, 3350, {}),
    GpuSpec("GH200", "GH200", None, (9, 0), 96, 4000, {}),
    GpuSpec("RTX PRO 6000", "6000", "PRO", (12, 0), 96, 1792, {}),
)
# MIG: a slice gets g of the GPU's 7 compute slices (NVIDIA MIG User Guide, "Supported MIG
# Profiles": A100/H100/H200/B200 profiles are 1g..7g of 7). torch and NVML name a slice
# "NVIDIA H100 80GB HBM3 MIG 1g.10gb".
MIG_SLICES = 7
_MIG_PROFILE = re.compile(r"(\d)G\.(\d+)GB")


def _tokens(device_name: str) -> set[str]:
    return {t for t in re.split(r"[\s\-_/]+", device_name.upper()) if t}


def find_gpu(device_name: str) -> GpuSpec | None:
    """The table entry for a device name as torch/nvidia-smi spell it ("Tesla V100-PCIE-16GB",
    "NVIDIA H100 80GB HBM3") or as `plan --gpu` takes it ("V100", "h100 nvl"); None if unknown."""
    tokens = _tokens(device_name)
    for spec in GPUS:  # variants precede their default form in the table
        if spec.model in tokens and (spec.variant is None or spec.variant in tokens):
            return _mig_slice(spec, tokens) if "MIG" in tokens else spec
    return None


def _mig_slice(spec: GpuSpec, tokens: set[str]) -> GpuSpec:
    """The slice of `spec` a MIG profile token names: g/7 of its peaks, the profile's memory.
    A MIG device without a readable profile keeps no peaks (its share is unknown)."""
    profile = next((m for m in map(_MIG_PROFILE.fullmatch, tokens) if m), None)
    if profile is None:
        return replace(spec, name=f"{spec.name} MIG", peak_flops={}, mig="unknown profile")
    slices, memory = int(profile.group(1)), int(profile.group(2))
    share = slices / MIG_SLICES
    label = f"{slices}g.{memory}gb"
    peaks = {k: v * share for k, v in spec.peak_flops.items()}
    name = f"{spec.name} MIG {label}"
    # memory slices carry their share of the bandwidth: the profile's memory over the card's
    bandwidth = spec.memory_gbps * min(1.0, memory / spec.memory_gib)
    return replace(
        spec, name=name, memory_gib=memory, memory_gbps=bandwidth, peak_flops=peaks, mig=label
    )


def spec_for(device_name: str, cc: tuple[int, int], memory_gib: int | None) -> GpuSpec:
    """The table entry for a present GPU, or one built from what NVML/torch report of it
    (capability, memory) when its name is not in the table: no peaks, so no MFU."""
    known = find_gpu(device_name)
    if known is not None:
        return known
    tokens = _tokens(device_name)
    mig = "MIG" if "MIG" in tokens else None
    return GpuSpec(device_name, device_name, None, cc, memory_gib or 0, 0, {}, mig)


def peak_flops(device_name: str, precision: str) -> float | None:
    """Dense peak FLOP/s of a device at `precision`, or None (unknown GPU or no such unit)."""
    spec = find_gpu(device_name)
    return spec.peak_flops.get(precision) if spec else None


# What torch.compile on a GPU runs: Triton builds a C launcher per kernel (gcc), inductor
# compiles its C++ wrapper and host code (g++). Keys: Debian package; values: $VAR, programs.
COMPILE_TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gcc": ("CC", ("cc", "gcc")),
    "g++": ("CXX", ("c++", "g++")),
}


def _kernels(sass: tuple[int, ...], ptx: tuple[int, ...] = ()) -> Kernels:
    return Kernels(frozenset(sass), frozenset(ptx))


@dataclass(frozen=True)
class Image:
    """One GPU image (compose service): the kernels its torch and ONNX Runtime carry and the
    driver its CUDA build needs. Which GPU it serves follows from the kernels, not a range."""

    generation: str
    service: str
    tag: str
    profile: str | None  # compose profile that enables the service
    torch_kernels: Kernels  # torch.cuda.get_arch_list() of its torch build
    ort_kernels: Kernels | None  # its onnxruntime-gpu's CUDA provider; None: CPU onnxruntime
    min_driver: tuple[int, ...]  # the CUDA build's minimum Linux driver
    torch: str
    cuda: str
    onnxruntime: str
    # compose APT_PACKAGES: Triton builds a C launcher per kernel (gcc), inductor's C++
    # wrapper and CPU kernels need g++, both need libc headers.
    apt_packages: tuple[str, ...] = ("gcc", "g++", "libc6-dev")

    @property
    def ort_gpu(self) -> bool:
        """Whether the image's ONNX Runtime is a CUDA build (the Kepler image's is CPU only)."""
        return self.ort_kernels is not None

    @property
    def label(self) -> str:
        return f"{self.service} ({self.tag})"

    @property
    def missing_compilers(self) -> tuple[str, ...]:
        """The compilers torch.compile needs that the image does not install."""
        return tuple(t for t in COMPILE_TOOLS if t not in self.apt_packages)

    def serves(self, cc: tuple[int, int]) -> bool:
        """Whether its torch has a kernel image that runs on compute capability `cc`."""
        return self.torch_kernels.runs_on(cc)


# Newest first. Kernel tables, where each came from:
#  torch 2.13.0 cu130: read from the registry's wheel (torch-2.13.0-cp311-...manylinux_2_28
#    _x86_64.whl, torch/version.py '2.13.0+cu130'): libtorch_cuda.so's gencode flags
#    "arch=compute_75,code=sm_75 ... compute_120,code=sm_120" = sm_75/80/86/90/100/120, no
#    code=compute_* (no PTX); tests/test_kernel_tables.py checks it in the image.
#  torch 2.13.0 cu126 and 2.7.1 cu118: PyTorch's index is out of reach here. cu126: PyTorch's
#    RELEASE.md, "CUDA Support Matrix" for 2.12-2.14: 12.6.3 Maxwell(5.0), Pascal(6.0),
#    Volta(7.0), Turing(7.5), Ampere(8.0, 8.6), Hopper(9.0), no PTX; cu118: its
#    .ci/manywheel/build_cuda.sh, "3.7;5.0;6.0;7.0;7.5;8.0;8.6;9.0".
#  onnxruntime-gpu: read from each wheel's libonnxruntime_providers_cuda.so (harness.gpu.kernels):
#    1.26.0 sm_60/70/75/80/86/90 + PTX 90; 1.28.0 sm_75/80/86/89/90/100/120 + PTX 120;
#    (1.31.1: sm_75/80/86/89/90/120, no PTX: no B200, which is why bench-gpu pins 1.28.0).
# Driver minimums (CUDA release notes, table 3): CUDA 13.0 580.65.06; CUDA 12.x 525.60.13
# and CUDA 11.x 450.80.02 (minor-version compatibility, which the pip CUDA wheels rely on).
IMAGES: tuple[Image, ...] = (
    Image(
        "turing+",
        "bench-gpu",
        "resnest-bench-gpu:0.1.0-cu130",
        None,
        _kernels((75, 80, 86, 90, 100, 120)),
        _kernels((75, 80, 86, 89, 90, 100, 120), (120,)),
        (580, 65, 6),
        "2.13.0",
        "13.0",
        "onnxruntime-gpu 1.28.0",
    ),
    Image(
        "pascal-volta",
        "bench-gpu-volta",
        "resnest-bench-gpu:0.1.0-cu126",
        "volta",
        _kernels((50, 60, 70, 75, 80, 86, 90)),
        _kernels((60, 70, 75, 80, 86, 90), (90,)),
        (525, 60, 13),
        "2.13.0",
        "12.6",
        "onnxruntime-gpu 1.26.0",
    ),
    Image(
        "kepler-maxwell",
        "bench-gpu-kepler",
        "resnest-bench-gpu:0.1.0-cu118",
        "kepler",
        _kernels((37, 50, 60, 70, 75, 80, 86, 90)),
        None,
        (450, 80, 2),
        "2.7.1",
        "11.8",
        "onnxruntime 1.32.0 (CPU: no CUDA build has sm_37)",
    ),
)


def parse_driver(text: str) -> tuple[int, ...]:
    """'535.104.05' -> (535, 104, 5); ValueError on anything else."""
    parts = text.strip().split(".")
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a driver version: {text!r}")
    return tuple(int(p) for p in parts)


def driver_at_least(driver: tuple[int, ...], minimum: tuple[int, ...]) -> bool:
    """Whether `driver` is `minimum` or newer. A version with fewer parts names a branch
    ("525.60" is some 525.60.x): it is compared on the parts it gives, so it is not older
    than 525.60.13 (as a plain tuple comparison would say)."""
    return driver >= minimum[: len(driver)]


def format_driver(numbers: tuple[int, ...]) -> str:
    """(580, 65, 6) -> '580.65.06', as NVIDIA writes driver versions."""
    return ".".join([str(n) if i == 0 else f"{n:02d}" for i, n in enumerate(numbers)])


def image_for(cc: tuple[int, int], driver: tuple[int, ...] | None = None) -> Image:
    """The newest image whose torch has kernels for `cc` and runs on `driver` (None: assume
    new enough).

    An older driver falls back to an older CUDA build where that build still has kernels for
    the GPU. ValueError, one line, names what is missing: the driver version needed, or that
    no image has kernels for the GPU."""
    served = [i for i in IMAGES if i.serves(cc)]
    sm = f"sm_{cc[0]}{cc[1]}"
    if not served:
        raise ValueError(f"no image has kernels for compute capability {cc[0]}.{cc[1]} ({sm})")
    for image in served:
        if driver is None or driver_at_least(driver, image.min_driver):
            return image
    oldest_ok, newest = served[-1], served[0]
    also = ""
    if newest is not oldest_ok:
        also = f"; >= {format_driver(newest.min_driver)} for {newest.service} (CUDA {newest.cuda})"
    raise ValueError(
        f"NVIDIA driver {format_driver(driver or ())} is too old for {sm}: install "
        f">= {format_driver(oldest_ok.min_driver)} for {oldest_ok.service} (CUDA {oldest_ok.cuda})"
        f"{also}"
    )


def kernel_problem(cc: tuple[int, int], arch_list: list[str], where: str) -> str | None:
    """Why the torch in `where` cannot run on `cc` (its torch.cuda.get_arch_list()), naming
    the image that can; None when it can (or the list is empty: a CPU build says so itself)."""
    if not arch_list:
        return None
    kernels = Kernels.from_arch_list(arch_list)
    if kernels.runs_on(cc):
        return None
    try:
        fit = f": use {image_for(cc).service}"
    except ValueError as exc:
        fit = f": {exc}"
    return (
        f"{where} has no kernels for sm_{cc[0]}{cc[1]} (it has {kernels.describe()}); the first "
        f"kernel would fail with 'no kernel image'{fit}"
    )


def auto_precision(cc: tuple[int, int] | None) -> tuple[str, str]:
    """Training precision for `precision = "auto"` and why: bf16 from sm_80, fp16 with a loss
    scaler on sm_70-sm_7x (tensor cores, no bf16), fp32 below and on the CPU."""
    if cc is None:
        return "fp32", "auto: CPU, fp32"
    sm = f"sm_{cc[0]}{cc[1]}"
    if cc >= (8, 0):
        return "bf16", f"auto: {sm} has bf16 tensor cores"
    if cc >= (7, 0):
        return "fp16", f"auto: {sm} has fp16 tensor cores but no bf16 (loss scaling on)"
    return "fp32", f"auto: {sm} has no tensor cores"


def resolve_precision(requested: str, cc: tuple[int, int] | None) -> tuple[str, str]:
    """The precision a run uses and why: `auto` goes by the card, anything else as asked."""
    if requested == "auto":
        return auto_precision(cc)
    return requested, "as requested"


def precision_problem(precision: str, cc: tuple[int, int] | None) -> str | None:
    """Why `precision` cannot train on compute capability `cc` (None: it can, or CPU)."""
    if cc is not None and precision == "bf16" and cc < (8, 0):
        return (
            f"bf16 needs an Ampere or newer GPU (sm_80+), this one is sm_{cc[0]}{cc[1]}: use fp16"
        )
    return None


def compile_problem(cc: tuple[int, int] | None, missing: tuple[str, ...] = ()) -> str | None:
    """Why torch.compile cannot run on GPU `cc` (None: it can, or CPU), `missing` being the
    compilers it lacks (harness.gpu.accel.missing_compilers: the same check plan and run make)."""
    if cc is None:
        return None
    if cc < (7, 0):
        return (
            f"torch.compile (Triton) needs compute capability >= 7.0, this GPU is sm_{cc[0]}{cc[1]}"
        )
    if missing:
        return (
            f"torch.compile on a GPU needs {' and '.join(missing)} (Triton builds its launchers "
            "with gcc, inductor's C++ parts with g++): install them or set $CC/$CXX"
        )
    return None


def resolve_compile(
    requested: bool | str, cc: tuple[int, int] | None, missing: tuple[str, ...] = ()
) -> tuple[bool, str]:
    """Whether a training step compiles and why. "auto" compiles on a GPU Triton supports
    (sm_70+) with the compilers there, and stays eager elsewhere (the CPU, Pascal and older,
    no compiler) rather than failing; True or False is kept as asked (compile_problem checks
    an explicit True)."""
    if requested != "auto":
        return bool(requested), "as requested"
    problem = compile_problem(cc, missing)
    if cc is None:
        return False, "auto: eager on the CPU"
    if problem is not None:
        return False, f"auto: eager ({problem})"
    return True, f"auto: sm_{cc[0]}{cc[1]} runs Triton"


def cudnn_usable(cc: tuple[int, int]) -> bool:
    """cuDNN 9 (the one every supported torch build brings) has no kernels below sm_50."""
    return cc >= (5, 0)


def image_table() -> str:
    """docs/containers-and-gpus.md's "Which image for my GPU" table: every GPU in the table, the
    image it gets with a current driver, the older images an older driver falls back to, and
    auto's precision."""
    from resnest_bench.harness.report.markdown import table

    rows = []
    for spec in GPUS:
        cc = spec.compute_capability
        image = image_for(cc)
        older = [
            f"`{i.service}` (>= {format_driver(i.min_driver)})"
            for i in IMAGES
            if i is not image and i.serves(cc) and i.min_driver < image.min_driver
        ]
        precision, _ = auto_precision(cc)
        rows.append(
            [
                spec.name,
                f"{cc[0]}.{cc[1]}",
                f"`{image.service}`",
                f"{image.torch} / CUDA {image.cuda}",
                f">= {format_driver(image.min_driver)}",
                ", ".join(older) or "none",
                precision,
                "on" if cudnn_usable(cc) else "off",
            ]
        )
    head = ["GPU", "compute capability", "image", "torch / CUDA", "driver", "older driver"]
    return table([*head, "precision (auto)", "cuDNN"], rows)
