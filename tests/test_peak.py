"""The CPU peak per precision, against vendors' published per-cycle figures: 32 fp32 FLOP per
cycle per core on AMD Zen 3 and Zen 4 (two 256-bit FMA pipes; Zen 4 runs AVX-512 on them), 64 on
Zen 5 and on Intel Xeon Scalable with two AVX-512 FMA units; int8 with VNNI 4x fp32, without
VNNI 2x; AVX512_BF16 2x fp32."""

from __future__ import annotations

import pytest

from resnest_bench.harness.host.peak import achieved_gops, cpu_peak, precision_of
from resnest_bench.harness.results.environment import CpuInfo

ZEN3 = CpuInfo(vendor="AuthenticAMD", family=25, mhz=2450.0, isa_flags=["avx2"])
ZEN4 = CpuInfo(
    vendor="AuthenticAMD",
    family=25,
    mhz=2600.0,
    isa_flags=["avx2", "avx512f", "avx512_vnni", "avx512_bf16"],
)
ZEN5 = ZEN4.model_copy(update={"family": 26})
XEON = CpuInfo(
    vendor="GenuineIntel", family=6, mhz=2800.0, isa_flags=["avx2", "avx512f", "avx512_vnni"]
)


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [
        (ZEN3, {"fp32": 156.8, "int8": 313.6}),  # 2 cores x 2.45 GHz x 32 / x 64
        (ZEN4, {"fp32": 166.4, "int8": 665.6, "bf16": 332.8}),  # x 32 / x 128 / x 64
        (ZEN5, {"fp32": 332.8, "int8": 1331.2, "bf16": 665.6}),  # x 64 / x 256 / x 128
        (XEON, {"fp32": 358.4, "int8": 1433.6}),  # 2 x 2.8 x 64 / x 256
    ],
)
def test_peak_per_precision_on_two_cores(cpu, expected):
    peak = cpu_peak(cpu, 2)
    assert peak is not None
    assert peak.gops == pytest.approx(expected)
    assert "FMA pipes" in peak.how


def test_no_peak_without_a_clock_or_a_modelled_vector_unit():
    assert cpu_peak(ZEN4.model_copy(update={"mhz": None}), 2) is None
    assert cpu_peak(CpuInfo(vendor="ARM", mhz=3000.0, isa_flags=["neon"]), 2) is None


def test_achieved_and_precision_labels():
    assert achieved_gops(1_000_000_000, 10.0) == pytest.approx(200.0)
    assert [precision_of(t) for t in ("ort-cpu:int8-ort-format", "openvino:bf16", "x:fp32")] == [
        "int8",
        "bf16",
        "fp32",
    ]
