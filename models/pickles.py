"""What a pickle would import, read without running it: to say why a weights file is refused.

torch.load(weights_only=True) already refuses every pickle that names anything but tensors,
so safety never depends on this module; it only chooses the words. A file whose pickle would
call os.system or eval is refused *as unsafe*, not called "damaged or cut short".
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

# Modules whose functions run code or touch the system when a pickle calls them.
_CODE_RUNNING = frozenset(
    {
        "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib", "runpy",
        "pickle", "marshal", "types", "code", "codeop", "ctypes", "functools", "operator",
        "pty", "webbrowser", "commands", "popen2", "platform", "signal", "asyncio",
        "multiprocessing", "threading", "urllib", "http", "ftplib", "smtplib", "tempfile",
    }
)  # fmt: skip
_SAFE_BUILTINS = frozenset(
    {"set", "frozenset", "dict", "list", "tuple", "slice", "complex", "int", "float", "bool",
     "str", "bytes", "bytearray", "range", "object"}
)  # fmt: skip
_STRINGS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING",
                      "BINSTRING", "SHORT_BINSTRING"})  # fmt: skip


def _pickle_bytes(path: Path) -> bytes:
    """The pickle itself: data.pkl inside torch.save's zip, else the whole file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            return archive.read(name) if name else b""
    return path.read_bytes()


def imported_names(path: Path) -> list[str]:
    """'module.name' of every global the pickle in `path` would import, in order; as many as
    could be read before the stream ended or broke (a damaged file gives a partial list)."""
    names: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(_pickle_bytes(path)):
            if opcode.name in _STRINGS:
                strings.append(str(arg))
            elif opcode.name in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:
        pass
    return names


def code_running(names: list[str]) -> str | None:
    """The first of `names` that would run code or touch the system if called, or None."""
    for name in names:
        module, _, attr = name.rpartition(".")
        top = module.split(".")[0]
        if top in _CODE_RUNNING or (top == "builtins" and attr not in _SAFE_BUILTINS):
            return name
    return None
