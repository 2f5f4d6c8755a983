"""Which int8 scheme to ask ONNX Runtime for, from the CPU's instruction set.

ORT's default on x86 multiplies uint8 activations by int8 weights (u8s8). Without VNNI, the
AVX2 / AVX-512 kernels do that with VPMADDUBSW, which adds two products into a saturating int16:
large activations times large weights clip, and accuracy can collapse (measured here: a
ResNeSt-26 on real digit images, 93.3% fp32, 83.8% u8s8 on an AVX2 AMD EPYC). ORT's own docs say
to use 7-bit weights (reduce_range) or u8u8 there; both kept 93.6% on the same model and CPU.
With VNNI (VPDPBUSD accumulates in int32) or off x86, u8s8 is exact and fastest.
"""

from __future__ import annotations

import platform
from collections.abc import Collection

from resnest_bench.harness.results.deployment import Int8Scheme

U8S8 = Int8Scheme(name="u8s8", activations="uint8", weights="int8", reduce_range=False)
U8S8_REDUCED = Int8Scheme(
    name="u8s8-reduce-range", activations="uint8", weights="int8", reduce_range=True
)
U8U8 = Int8Scheme(name="u8u8", activations="uint8", weights="uint8", reduce_range=False)

_X86 = frozenset({"x86_64", "amd64", "i386", "i686"})
_VNNI = frozenset({"avx512_vnni", "avx_vnni"})


def schemes_for(isa_flags: Collection[str], machine: str) -> tuple[list[Int8Scheme], str]:
    """The schemes to try, best first, and why (for the report)."""
    if machine.lower() not in _X86:
        return [U8S8, U8U8], f"{machine}: u8s8 (no saturating int16 step off x86)"
    if _VNNI & set(isa_flags):
        return [U8S8, U8S8_REDUCED, U8U8], "x86 with VNNI: u8s8 (exact int32 accumulation)"
    return (
        [U8S8_REDUCED, U8U8],
        "x86 without VNNI: u8s8 saturates in VPMADDUBSW, so 7-bit weights (reduce_range) "
        "first, then u8u8",
    )


def schemes_for_this_cpu() -> tuple[list[Int8Scheme], str]:
    from resnest_bench.harness.host.envinfo import isa_flags

    return schemes_for(isa_flags(), platform.machine())
