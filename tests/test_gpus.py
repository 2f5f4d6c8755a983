"""harness.gpu.catalog: the GPU table and each decision made from it, per generation, no GPU."""

import sys

import pytest

from resnest_bench.harness.gpu import catalog as gpus


@pytest.mark.parametrize(
    ("device_name", "expected"),
    [
        ("Tesla K80", "K80"),
        ("Tesla P100-PCIE-16GB", "P100 PCIe"),
        ("Tesla P100-SXM2-16GB", "P100 SXM2"),
        ("Tesla V100-SXM2-16GB", "V100 SXM2"),
        ("Tesla V100-PCIE-32GB", "V100 PCIe"),
        ("Tesla V100S-PCIE-32GB", "V100S"),
        ("Tesla T4", "T4"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA A30", "A30"),
        ("NVIDIA A40", "A40"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100-PCIE-40GB", "A100"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40", "L40"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA H200 NVL", "H200 NVL"),
        ("NVIDIA B200", "B200"),
        ("h100 nvl", "H100 NVL"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA GeForce RTX 3090", "RTX 3090"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
        ("NVIDIA H800", "H800"),
        ("NVIDIA GH200 480GB", "GH200"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX PRO 6000"),
    ],
)
def test_device_names_match_their_own_entry(device_name, expected):
    assert gpus.find_gpu(device_name).name == expected


# Compute capability per card, written out from NVIDIA's "CUDA GPUs" list
# (developer.nvidia.com/cuda-gpus) and, for the data-centre parts not on it (A10G: GA102,
# H800: GH100), from the chip they are built on.
@pytest.mark.parametrize(
    ("name", "cc"),
    [
        ("K80", (3, 7)),
        ("P100", (6, 0)),
        ("V100", (7, 0)),
        ("T4", (7, 5)),
        ("A100", (8, 0)),
        ("A10", (8, 6)),
        ("A10G", (8, 6)),
        ("RTX 3090", (8, 6)),
        ("L4", (8, 9)),
        ("RTX 4090", (8, 9)),
        ("H100", (9, 0)),
        ("H800", (9, 0)),
        ("GH200", (9, 0)),
        ("B200", (10, 0)),
        ("RTX PRO 6000", (12, 0)),
    ],
)
def test_compute_capability_is_nvidias(name, cc):
    assert gpus.find_gpu(name).compute_capability == cc


@pytest.mark.parametrize(
    "device_name", ["NVIDIA RTX A1000", "NVIDIA GB200", "Quadro RTX 6000", "cpu"]
)
def test_lookalike_names_are_unknown_not_misread(device_name):
    assert gpus.find_gpu(device_name) is None
    assert gpus.peak_flops(device_name, "fp32") is None


def test_peaks_differ_by_variant_and_precision():
    assert gpus.peak_flops("NVIDIA H100 NVL", "bf16") < gpus.peak_flops(
        "NVIDIA H100 80GB HBM3", "bf16"
    )
    assert gpus.peak_flops("Tesla V100S-PCIE-32GB", "fp32") > gpus.peak_flops(
        "Tesla V100-SXM2-16GB", "fp32"
    )
    assert gpus.peak_flops("Tesla V100-SXM2-16GB", "bf16") is None  # no bf16 before Ampere
    assert gpus.peak_flops("Tesla T4", "tf32") == gpus.peak_flops("Tesla T4", "fp32")


@pytest.mark.parametrize(
    ("name", "precision"),
    [
        ("K80", "fp32"),
        ("P100", "fp32"),
        ("V100", "fp16"),
        ("T4", "fp16"),
        ("A10", "bf16"),
        ("A100", "bf16"),
        ("L4", "bf16"),
        ("H100", "bf16"),
        ("B200", "bf16"),
    ],
)
def test_auto_precision_fits_the_card(name, precision):
    chosen, why = gpus.auto_precision(gpus.find_gpu(name).compute_capability)
    assert chosen == precision
    assert why.startswith("auto: ")


def test_auto_precision_on_cpu_is_fp32():
    assert gpus.auto_precision(None)[0] == "fp32"


# Which image a card gets on a driver. Expected answers come from outside the table:
# kernels read from the real wheels (torch 2.13.0 from PyPI = cu130: sm_75/80/86/90/100/120, no
# PTX) and PyTorch's build script for cu126 (sm_50-sm_90) and cu118 (adds sm_37); driver
# minimums from NVIDIA's CUDA release notes (13.0: 580.65.06, 12.x: 525.60.13, 11.x: 450.80.02).
@pytest.mark.parametrize(
    ("name", "driver", "service"),
    [
        ("H100", "580.95.05", "bench-gpu"),
        ("T4", "590.1", "bench-gpu"),
        ("T4", "535.104.05", "bench-gpu-volta"),  # Turing on an R535 driver: the cu126 image
        ("P100", "580.95.05", "bench-gpu-volta"),  # new driver, but cu130 has no sm_60 kernels
        ("V100", "580.95.05", "bench-gpu-volta"),  # ... nor sm_70
        ("V100", "580.65.06", "bench-gpu-volta"),
        ("P100", "525.60.13", "bench-gpu-volta"),
        ("L4", "580.65.06", "bench-gpu"),  # sm_89 runs the sm_86 cubins (same major)
        ("B200", "580.65.06", "bench-gpu"),
        ("RTX PRO 6000", "580.65.06", "bench-gpu"),
        ("K80", "470.256.02", "bench-gpu-kepler"),  # R470, the last K80 driver
        ("K80", "580.95.05", "bench-gpu-kepler"),  # only cu118 has sm_37
        ("K80", None, "bench-gpu-kepler"),
        ("H100", "550.54.15", "bench-gpu-volta"),  # cu126 still has sm_90 kernels
        ("H100", "525.60", "bench-gpu-volta"),  # a branch, not older than 525.60.13
        ("H100", "525.60.13", "bench-gpu-volta"),
        ("H100", "580", "bench-gpu"),
    ],
)
def test_image_follows_kernels_and_driver(name, driver, service):
    cc = gpus.find_gpu(name).compute_capability
    parsed = gpus.parse_driver(driver) if driver else None
    assert gpus.image_for(cc, parsed).service == service


@pytest.mark.parametrize(
    ("driver", "minimum", "ok"),
    [
        ("525.60", (525, 60, 13), True),  # was < 525.60.13 as tuples: an H100 went to Kepler
        ("525.60.13", (525, 60, 13), True),
        ("525.60.12", (525, 60, 13), False),
        ("525.53", (525, 60, 13), False),
        ("525", (525, 60, 13), True),
        ("580.65.05", (580, 65, 6), False),
        ("580.105.08", (580, 65, 6), True),
        ("470.256.02", (580, 65, 6), False),
    ],
)
def test_driver_versions_compare_part_by_part(driver, minimum, ok):
    assert gpus.driver_at_least(gpus.parse_driver(driver), minimum) is ok


def test_too_old_driver_or_gpu_is_refused_with_a_reason():
    with pytest.raises(ValueError, match=r"driver 418\.67 is too old for sm_70: install >= 450"):
        gpus.image_for((7, 0), gpus.parse_driver("418.67"))
    # Blackwell has kernels only in the cu130 build: an R570 driver cannot fall back
    with pytest.raises(ValueError, match=r"570\.86 is too old for sm_100: install >= 580\.65\.06"):
        gpus.image_for((10, 0), gpus.parse_driver("570.86"))
    with pytest.raises(
        ValueError, match=r"too old for sm_120: install >= 580\.65\.06 for bench-gpu"
    ):
        gpus.image_for((12, 0), gpus.parse_driver("535.104.05"))
    with pytest.raises(ValueError, match=r"no image has kernels for compute capability 3\.5"):
        gpus.image_for((3, 5))
    with pytest.raises(ValueError, match="not a driver version"):
        gpus.parse_driver("N/A")


def test_kernel_problem_names_the_image_that_fits():
    # torch.cuda.get_arch_list() of PyPI's torch 2.13.0 (cu130), as its libtorch_cuda.so says
    cu130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    problem = gpus.kernel_problem((7, 0), cu130, "bench-gpu")
    assert "bench-gpu has no kernels for sm_70" in problem
    assert "no kernel image" in problem and problem.endswith("use bench-gpu-volta")
    assert gpus.kernel_problem((9, 0), cu130, "bench-gpu") is None
    assert gpus.kernel_problem((8, 9), cu130, "bench-gpu") is None
    assert "no image has kernels" in gpus.kernel_problem((3, 5), cu130, "x")
    assert gpus.kernel_problem((7, 0), [], "a CPU build") is None


# MIG slices: g of 7 compute slices (NVIDIA MIG User Guide, supported profiles), so the peak
# is the full card's x g/7; memory is the profile's.
@pytest.mark.parametrize(
    ("device_name", "name", "memory", "bf16"),
    [
        ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "H100 SXM MIG 1g.10gb", 10, 989e12 / 7),
        ("NVIDIA H100 80GB HBM3 MIG 3g.40gb", "H100 SXM MIG 3g.40gb", 40, 989e12 * 3 / 7),
        ("NVIDIA A100-SXM4-40GB MIG 2g.10gb", "A100 MIG 2g.10gb", 10, 312e12 * 2 / 7),
        ("NVIDIA H100 80GB HBM3 MIG", "H100 SXM MIG", 80, None),  # share unknown: no peak
    ],
)
def test_a_mig_slice_is_not_the_full_card(device_name, name, memory, bf16):
    spec = gpus.find_gpu(device_name)
    assert (spec.name, spec.memory_gib, spec.mig is not None) == (name, memory, True)
    assert gpus.peak_flops(device_name, "bf16") == (pytest.approx(bf16) if bf16 else None)


def test_an_unknown_card_is_known_by_its_capability_and_memory():
    spec = gpus.spec_for("NVIDIA Future X1", (12, 1), 128)
    assert (spec.compute_capability, spec.memory_gib, spec.peak_flops) == ((12, 1), 128, {})
    assert gpus.image_for(spec.compute_capability).service == "bench-gpu"  # sm_120 cubins
    assert gpus.spec_for("NVIDIA H100 PCIe", (9, 0), None).name == "H100 PCIe"


def test_precision_and_compile_rules():
    assert gpus.resolve_precision("fp32", (9, 0)) == ("fp32", "as requested")
    assert gpus.resolve_precision("auto", (7, 0))[0] == "fp16"
    assert "sm_75" in gpus.precision_problem("bf16", (7, 5))
    assert gpus.precision_problem("bf16", (8, 0)) is None
    assert gpus.precision_problem("bf16", None) is None  # CPU autocast has bf16
    assert "7.0" in gpus.compile_problem((6, 0))
    assert "needs g++" in gpus.compile_problem((9, 0), ("g++",))
    assert "needs gcc and g++" in gpus.compile_problem((9, 0), ("gcc", "g++"))
    assert gpus.compile_problem((9, 0)) is None


@pytest.mark.parametrize(
    ("cc", "missing", "compiled"),
    [
        (None, (), False),  # the CPU: eager
        ((3, 7), (), False),  # K80: Triton needs sm_70
        ((6, 0), (), False),  # P100
        ((7, 0), (), True),  # V100
        ((9, 0), (), True),
        ((9, 0), ("g++",), False),  # an image without g++ stays eager instead of failing
    ],
)
def test_compile_auto_runs_where_triton_does(cc, missing, compiled):
    assert gpus.resolve_compile("auto", cc, missing)[0] is compiled
    assert gpus.resolve_compile(True, (6, 0)) == (True, "as requested")  # checked elsewhere


def test_cudnn_is_off_on_kepler_only():
    assert not gpus.cudnn_usable(gpus.find_gpu("K80").compute_capability)
    assert gpus.cudnn_usable(gpus.find_gpu("P100").compute_capability)


def test_the_table_imports_without_torch():
    import subprocess

    code = "import resnest_bench.harness.gpu.catalog, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("gpu", "precision", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989e12),
        ("NVIDIA H100 PCIe", "fp16", 756e12),
        ("NVIDIA H200", "tf32", 495e12),
        ("NVIDIA A100-SXM4-40GB", "fp32", 19.5e12),
        ("Tesla V100-SXM2-16GB", "fp16", 125e12),
        ("Tesla V100-PCIE-16GB", "fp16", 112e12),
        ("Tesla V100-SXM2-16GB", "bf16", None),  # no bf16 arithmetic before Ampere
        ("Tesla P100-PCIE-16GB", "tf32", 9.3e12),  # tf32 is a no-op: runs at the fp32 rate
        ("Tesla K80", "fp32", 4.37e12),
        ("NVIDIA L4", "bf16", 121e12),
        ("NVIDIA L40S", "bf16", 362e12),  # not an L4
        ("NVIDIA B200", "bf16", 2250e12),
        ("Some Future GPU", "fp32", None),
    ],
)
def test_peak_flops_table(gpu, precision, peak):
    assert gpus.peak_flops(gpu, precision) == (pytest.approx(peak) if peak else None)


def test_readme_gpu_table_is_the_generated_one():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "docs" / "containers-and-gpus.md").read_text(
        encoding="utf-8"
    )
    start, end = "<!-- gpu-table:start -->\n", "\n<!-- gpu-table:end -->"
    assert start in readme and end in readme
    block = readme.split(start, 1)[1].split(end, 1)[0]
    assert block == gpus.image_table()
