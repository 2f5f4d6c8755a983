"""harness.gpu.kernels: a fatbin reader checked on ELF files written here in the documented layout,
and the kernel tables' "does this card find a kernel" answers, written out from the real wheels.
The tables themselves are checked against the installed libraries in tests/test_kernel_tables.py
(inside a GPU image) and by doctor's "image kernels" line, which CI runs in the built image."""

from __future__ import annotations

import struct

import pytest

from resnest_bench.harness.gpu.kernels import Kernels, fatbin_kernels, library_kernels

PTX, CUBIN = 1, 2


def _entry(kind: int, arch: int, payload: bytes) -> bytes:
    header = bytearray(64)
    struct.pack_into("<HHIQ", header, 0, kind, 0x101, 64, len(payload))
    struct.pack_into("<I", header, 28, arch)
    return bytes(header) + payload


def _fatbin(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def _elf(sections: dict[bytes, bytes]) -> bytes:
    """A minimal ELF64 little-endian file: a null section, .shstrtab, then `sections`."""
    names = b"\0.shstrtab\0" + b"".join(n + b"\0" for n in sections)
    blobs = [names, *sections.values()]
    offsets, data = [], bytearray(64)
    for blob in blobs:
        offsets.append(len(data))
        data += blob + b"\0" * (-len(blob) % 8)
    shoff = len(data)
    headers = bytearray(64)  # the null section
    name_at = 1
    for (name, blob), offset in zip(
        [(b".shstrtab", names), *sections.items()], offsets, strict=True
    ):
        header = bytearray(64)
        struct.pack_into("<II", header, 0, name_at, 1)
        struct.pack_into("<QQ", header, 24, offset, len(blob))
        headers += header
        name_at += len(name) + 1
    data += headers
    data[:16] = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    struct.pack_into("<Q", data, 0x28, shoff)
    struct.pack_into("<HHH", data, 0x3A, 64, len(blobs) + 1, 1)
    return bytes(data)


def test_reads_cubins_and_ptx_of_every_fatbin(tmp_path):
    first = _fatbin(
        _entry(CUBIN, 75, b"a" * 40), _entry(CUBIN, 90, b"b" * 8), _entry(PTX, 90, b"c")
    )
    second = _fatbin(_entry(CUBIN, 100, b"d" * 16))
    padding = b"\0" * 8  # the linker aligns each fatbin
    path = tmp_path / "lib.so"
    path.write_bytes(_elf({b".text": b"\x90" * 24, b".nv_fatbin": first + padding + second}))
    kernels = library_kernels(path)
    assert kernels == Kernels(frozenset({75, 90, 100}), frozenset({90}))
    assert kernels.describe() == "sm_75, sm_90, sm_100; compute_90"


def test_no_fatbin_section_is_no_kernels_and_a_non_elf_is_refused():
    assert fatbin_kernels(_elf({b".text": b"\x90"})) == Kernels(frozenset(), frozenset())
    with pytest.raises(ValueError, match="not a 64-bit little-endian ELF"):
        fatbin_kernels(b"PK\x03\x04 a zip, not a library")


# Read with harness.gpu.kernels from each wheel's onnxruntime/capi/libonnxruntime_providers_cuda.so
# (pip download --no-deps onnxruntime-gpu==X on 2026-12-07), and torch 2.13.0's gencode flags.
ORT_1_26 = Kernels(frozenset({60, 70, 75, 80, 86, 90}), frozenset({90}))
ORT_1_28 = Kernels(frozenset({75, 80, 86, 89, 90, 100, 120}), frozenset({120}))
ORT_1_31 = Kernels(frozenset({75, 80, 86, 89, 90, 120}), frozenset())
TORCH_2_13_CU130 = Kernels(frozenset({75, 80, 86, 90, 100, 120}), frozenset())


@pytest.mark.parametrize(
    ("kernels", "cc", "runs"),
    [
        (ORT_1_31, (10, 0), False),  # B200: no sm_100 cubin and no PTX to JIT
        (ORT_1_28, (10, 0), True),
        (ORT_1_28, (10, 3), True),  # GB300: the sm_100 cubin (same major, higher minor)
        (ORT_1_28, (12, 1), True),
        (ORT_1_26, (10, 0), True),  # PTX for 9.0 is compiled by the driver for newer cards
        (ORT_1_26, (6, 0), True),
        (TORCH_2_13_CU130, (6, 0), False),  # P100
        (TORCH_2_13_CU130, (7, 0), False),  # V100
        (TORCH_2_13_CU130, (8, 9), True),  # L4 runs sm_86
        (TORCH_2_13_CU130, (9, 0), True),
        (TORCH_2_13_CU130, (11, 0), False),  # Thor: no sm_11x cubin, no PTX
    ],
)
def test_a_card_finds_a_kernel_by_binary_compatibility_or_ptx(kernels, cc, runs):
    assert kernels.runs_on(cc) is runs


def test_arch_list_as_torch_gives_it():
    listed = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    assert Kernels.from_arch_list(listed) == TORCH_2_13_CU130
    assert Kernels.from_arch_list(["sm_90a", "compute_90"]) == Kernels(
        frozenset({90}), frozenset({90})
    )
    with pytest.raises(ValueError, match="not a CUDA architecture"):
        Kernels.from_arch_list(["gfx90a"])
