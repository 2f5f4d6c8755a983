"""Count the aten ops a piece of code runs, and those that would make the host wait for a GPU.

On CUDA a kernel launch returns at once; the host only waits when it needs a value the device
computed (`.item()`, `bool(t)`, a data-dependent shape) or uploads Python data with
`torch.tensor(...)` (a blocking copy from pageable memory). Every one of those stalls the
launch queue, and at batch 128 on a fast GPU a step is short enough for stalls to dominate.
They are visible on the CPU too, as the same aten ops, so this counts them without a GPU:

    with OpCounter() as counter:
        step()
    counter.counts.syncs, counter.counts.ops
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Ops whose result the host must read back from the device before it can go on.
SYNC_OPS = frozenset(
    {
        aten._local_scalar_dense.default,  # .item(), float(t), int(t), bool(t)
        aten.is_nonzero.default,
        aten.equal.default,
        aten.nonzero.default,
        aten.masked_select.default,
        aten._unique2.default,
        aten.unique_consecutive.default,
    }
)
# Python data turned into a tensor: on CUDA a blocking host->device copy.
UPLOAD_OPS = frozenset({aten.lift_fresh.default})
# Indexing with a boolean mask has a data-dependent shape (a nonzero inside).
MASK_INDEX_OPS = frozenset({aten.index.Tensor, aten.index_put.default, aten.index_put_.default})


@dataclass
class OpCounts:
    """Ops run, host syncs among them (by op name) and host->device uploads of Python data."""

    ops: int = 0
    uploads: int = 0
    sync_ops: Counter[str] = field(default_factory=Counter)

    @property
    def syncs(self) -> int:
        return sum(self.sync_ops.values())

    def per(self, steps: int) -> dict[str, float]:
        """Counts per step (or per any repeated unit) of `steps` repetitions."""
        return {
            "ops": self.ops / steps,
            "syncs": self.syncs / steps,
            "uploads": self.uploads / steps,
        }


def _mask_index(func: Any, args: tuple[Any, ...]) -> bool:
    if func not in MASK_INDEX_OPS or len(args) < 2:
        return False
    indices = args[1] or ()
    return any(
        isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices
    )


class OpCounter(TorchDispatchMode):
    """A dispatch mode that counts every aten op below autograd (forward, backward, optimizer)
    into `counts`; nesting it under torch.compile is not supported (count eager code)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts = OpCounts()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts.ops += 1
        if func in SYNC_OPS or _mask_index(func, args):
            self.counts.sync_ops[str(func.overloadpacket.__name__)] += 1
        elif func in UPLOAD_OPS:
            self.counts.uploads += 1
        return func(*args, **(kwargs or {}))
