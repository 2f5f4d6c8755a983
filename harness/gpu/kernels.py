"""Which GPU architectures a CUDA library really carries kernels for, read from its file.

A CUDA build of torch or onnxruntime-gpu runs on a GPU only if one of its kernels fits it: a
cubin (SASS) for the same major architecture and an equal or lower minor (sm_80 runs on sm_86),
or PTX for an equal or older architecture, which the driver compiles at load time. The release
notes are not always right about this (onnxruntime-gpu 1.30 dropped sm_100), so the harness's
per-image table is checked against the libraries themselves: the `.nv_fatbin` section of an ELF
shared library holds one fatbin header per compilation unit, and each entry names its kind
(PTX or cubin) and architecture. No GPU and no CUDA are needed to read it.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

_FATBIN_MAGIC = 0xBA55ED50
_KIND_PTX, _KIND_CUBIN = 1, 2


@dataclass(frozen=True)
class Kernels:
    """Architectures as integers (sm_86 -> 86): cubins and PTX."""

    sass: frozenset[int]
    ptx: frozenset[int]

    def runs_on(self, cc: tuple[int, int]) -> bool:
        """Whether a GPU of compute capability `cc` finds a kernel here (cubin or JIT PTX)."""
        major, minor = cc
        arch = 10 * major + minor
        if any(a // 10 == major and a % 10 <= minor for a in self.sass):
            return True
        return any(a <= arch for a in self.ptx)

    @classmethod
    def from_arch_list(cls, arch_list: list[str]) -> Kernels:
        """From torch.cuda.get_arch_list(): ["sm_75", ..., "compute_120"] (sm_90a counts as 90)."""
        sass: set[int] = set()
        ptx: set[int] = set()
        for arch in arch_list:
            found = re.fullmatch(r"(sm|compute)_(\d+)[a-z]?", arch)
            if found is None:
                raise ValueError(f"not a CUDA architecture: {arch!r}")
            (sass if found.group(1) == "sm" else ptx).add(int(found.group(2)))
        return cls(frozenset(sass), frozenset(ptx))

    def describe(self) -> str:
        sass = ", ".join(f"sm_{a}" for a in sorted(self.sass)) or "none"
        ptx = ", ".join(f"compute_{a}" for a in sorted(self.ptx)) or "no PTX"
        return f"{sass}; {ptx}"


def _section(data: bytes, name: bytes) -> tuple[int, int] | None:
    """(offset, size) of an ELF64 little-endian section by name, from the section headers."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    names_off = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 24)[0]
    for i in range(shnum):
        header = shoff + i * shentsize
        name_at = names_off + struct.unpack_from("<I", data, header)[0]
        if data[name_at : data.index(b"\0", name_at)] == name:
            offset, size = struct.unpack_from("<QQ", data, header + 24)
            return offset, size
    return None


def fatbin_kernels(data: bytes) -> Kernels:
    """Every cubin and PTX architecture in the fatbins of one ELF shared library's bytes.

    Layout (as cuobjdump reads it): a 16-byte fatbin header (magic, version, header size, size
    of the entries), then entries, each a header (kind u16, version u16, header size u32,
    payload size u64, ..., architecture u32 at byte 28) followed by its payload."""
    found = _section(data, b".nv_fatbin")
    if found is None:
        return Kernels(frozenset(), frozenset())
    start, size = found
    sass: set[int] = set()
    ptx: set[int] = set()
    pos, end = start, start + size
    magic_bytes = struct.pack("<I", _FATBIN_MAGIC)
    while (pos := data.find(magic_bytes, pos, end)) != -1 and pos + 16 <= end:
        _, _, header_size, fat_size = struct.unpack_from("<IHHQ", data, pos)  # after padding
        entry, stop = pos + header_size, pos + header_size + fat_size
        while entry < stop:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
            arch = struct.unpack_from("<I", data, entry + 28)[0]
            (ptx if kind == _KIND_PTX else sass if kind == _KIND_CUBIN else set()).add(arch)
            entry += entry_header + payload
        pos = stop
    return Kernels(frozenset(sass), frozenset(ptx))


def library_kernels(path: str | Path) -> Kernels:
    """fatbin_kernels of a library file (read whole: the largest are ~1 GB, read once)."""
    return fatbin_kernels(Path(path).read_bytes())
