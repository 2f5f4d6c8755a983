"""harness.gpus: the GPU table and each decision made from it, per generation, without a GPU."""

import sys

import pytest

from resnest_bench.harness import gpus


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
    ],
)
def test_device_names_match_their_own_entry(device_name, expected):
    assert gpus.find_gpu(device_name).name == expected


@pytest.mark.parametrize("device_name", ["NVIDIA RTX A1000", "NVIDIA GB200", "NVIDIA A10G", "cpu"])
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


@pytest.mark.parametrize(
    ("name", "driver", "service"),
    [
        ("H100", "580.95.05", "bench-gpu"),
        ("T4", "590.1", "bench-gpu"),
        ("T4", "535.104.05", "bench-gpu-volta"),  # Turing on an R535 driver: the cu126 image
        ("V100", "580.95.05", "bench-gpu-volta"),
        ("P100", "525.60.13", "bench-gpu-volta"),
        ("K80", "470.256.02", "bench-gpu-kepler"),  # R470, the last K80 driver
        ("K80", None, "bench-gpu-kepler"),
        ("H100", "550.54.15", "bench-gpu-volta"),  # cu126 still has sm_90 kernels
    ],
)
def test_image_follows_capability_and_driver(name, driver, service):
    cc = gpus.find_gpu(name).compute_capability
    parsed = gpus.parse_driver(driver) if driver else None
    assert gpus.image_for(cc, parsed).service == service


def test_too_old_driver_or_gpu_is_refused_with_a_reason():
    with pytest.raises(ValueError, match=r"driver 418\.67 is too old for sm_70: install >= 450"):
        gpus.image_for((7, 0), gpus.parse_driver("418.67"))
    # Blackwell has kernels only in the cu130 build: an R550 driver cannot fall back
    with pytest.raises(ValueError, match=r"550\.54 is too old for sm_100: install >= 580\.65\.06"):
        gpus.image_for((10, 0), gpus.parse_driver("550.54"))
    with pytest.raises(ValueError, match="older than any image"):
        gpus.image_for((3, 5))
    with pytest.raises(ValueError, match="not a driver version"):
        gpus.parse_driver("N/A")


def test_precision_and_compile_rules():
    assert gpus.resolve_precision("fp32", (9, 0)) == ("fp32", "as requested")
    assert gpus.resolve_precision("auto", (7, 0))[0] == "fp16"
    assert "sm_75" in gpus.precision_problem("bf16", (7, 5))
    assert gpus.precision_problem("bf16", (8, 0)) is None
    assert gpus.precision_problem("bf16", None) is None  # CPU autocast has bf16
    assert "7.0" in gpus.compile_problem((6, 0), c_compiler=True)
    assert "C compiler" in gpus.compile_problem((9, 0), c_compiler=False)
    assert gpus.compile_problem((9, 0), c_compiler=True) is None


def test_cudnn_is_off_on_kepler_only():
    assert not gpus.cudnn_usable(gpus.find_gpu("K80").compute_capability)
    assert gpus.cudnn_usable(gpus.find_gpu("P100").compute_capability)


def test_the_table_imports_without_torch():
    import subprocess

    code = "import resnest_bench.harness.gpus, sys; assert 'torch' not in sys.modules"
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

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- gpu-table:start -->\n", "\n<!-- gpu-table:end -->"
    assert start in readme and end in readme
    block = readme.split(start, 1)[1].split(end, 1)[0]
    assert block == gpus.image_table()
