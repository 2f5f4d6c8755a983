"""How far each CPU target is from the machine's limit: the CPU's peak operations per second
for a precision, from its instruction set, cores and clock, against what the target achieved
(2 x the model's MACs per batch-1 call / the call's median time).

The peak is a paper figure, and its derivation is kept with it:
    peak = cores x clock x ops per cycle per core
    ops per cycle = FMA pipes x lanes per instruction x 2 (multiply + add)
with 2 vector FMA pipes per core (AMD Zen 3/4/5; Intel Xeon Scalable parts with two AVX-512
FMA units) and the datapath width that the vendor documents: 256 bits on Zen 3 and Zen 4 (Zen
4 runs AVX-512 over 256-bit units), 512 bits on Zen 5 and on Intel AVX-512 parts. Lanes: fp32
W/32; bf16 (AVX512_BF16 vdpbf16ps) W/16; int8 with VNNI (vpdpbusd) W/8; int8 without VNNI
(vpmaddubsw + vpmaddwd, two multiply instructions per W/8 products) W/16. The clock is what
/proc/cpuinfo reports; boost clocks can exceed it, so a share above 100% means the estimate's
clock was too low, not that the target beat physics.
"""

from __future__ import annotations

from resnest_bench.harness.results.deployment import CpuPeak, Target
from resnest_bench.harness.results.environment import CpuInfo

FMA_PIPES = 2
AMD_ZEN5_FAMILY = 26  # 0x1A: Zen 5, the first AMD family with a full 512-bit datapath


def datapath_bits(cpu: CpuInfo) -> int | None:
    """Width of one vector FMA pipe, by vendor, family and ISA flags (None: not modelled)."""
    flags = set(cpu.isa_flags)
    if "avx512f" in flags:
        if cpu.vendor == "AuthenticAMD" and (cpu.family or 0) < AMD_ZEN5_FAMILY:
            return 256
        return 512
    if "avx2" in flags:
        return 256
    return None


def cpu_peak(cpu: CpuInfo, cores: int) -> CpuPeak | None:
    """Peak GOP/s per precision on `cores` cores of `cpu`, with how it was derived; None where
    the clock or the vector unit is unknown (not x86 with AVX2 or better)."""
    width = datapath_bits(cpu)
    if width is None or cpu.mhz is None:
        return None
    flags = set(cpu.isa_flags)
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    lanes = {"fp32": width // 32, "int8": width // 8 if vnni else width // 16}
    if "avx512_bf16" in flags:
        lanes["bf16"] = width // 16
    ghz = cpu.mhz / 1e3
    gops = {p: cores * ghz * FMA_PIPES * n * 2 for p, n in lanes.items()}
    int8_how = "VNNI vpdpbusd" if vnni else "no VNNI: vpmaddubsw + vpmaddwd"
    how = (
        f"{cores} cores x {ghz:.2f} GHz (/proc/cpuinfo) x {FMA_PIPES} FMA pipes x {width}-bit "
        f"lanes x 2 ops: fp32 {lanes['fp32']} lanes; int8 {lanes['int8']} lanes ({int8_how})"
        + (f"; bf16 {lanes['bf16']} lanes (vdpbf16ps)" if "bf16" in lanes else "")
        + ("; AMX present, not modelled" if "amx_tile" in flags else "")
        + "; a share over 100% means the cores ran above that clock (boost)"
    )
    return CpuPeak(gops=gops, how=how)


def precision_of(target: str) -> str:
    """The precision a target's label names: fp32, int8 (int8-ort-format too) or bf16."""
    label = target.rsplit(":", 1)[-1]
    return label.split("-", 1)[0]


def achieved_gops(macs: int, latency_ms: float) -> float:
    """Operations per second of one batch-1 call, in GOP/s (a MAC is 2 operations)."""
    return 2 * macs / (latency_ms / 1e3) / 1e9


def with_shares(targets: list[Target], macs: int, peak: CpuPeak | None) -> list[Target]:
    """CPU targets with their achieved GOP/s and, where the peak is known, its share."""
    out = []
    for t in targets:
        if not t.ok or t.device not in (None, "cpu") or t.latency_ms is None:
            out.append(t)
            continue
        gops = achieved_gops(macs, t.latency_ms.median)
        top = peak.gops.get(precision_of(t.target)) if peak else None
        share = 100.0 * gops / top if top else None
        out.append(t.model_copy(update={"gops": gops, "peak_pct": share}))
    return out
