"""Training time on a GPU from a stated model, before anything runs (`plan`).

One step costs the sum of three terms, each from a count and a stated rate:
- launch: kernels x the host's cost per kernel (eager dispatch, a compiled wrapper, or a CUDA
  graph replay);
- compute: FLOPs / (the card's dense peak at the precision x an assumed MFU);
- memory: bytes moved / the card's memory bandwidth.
The counts come from the model itself (models.profile.count_train_step, on the meta device):
eager runs every aten op as a kernel that reads and writes HBM; a compiled step is modelled as
its convolutions and matmuls, each followed by one fused kernel for the pointwise and
normalisation ops around it, so only the dense ops' traffic is left, read twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resnest_bench.models.profile import StepWork

# Host cost per kernel, seconds. Eager: PyTorch's dispatch and autograd bookkeeping per op,
# ~10 us (fitted below with the MFU). A compiled step without graphs: inductor's wrapper calls
# each Triton kernel directly, ~5 us. CUDA graphs (reduce-overhead): one replay, leaving the
# GPU's own ~1 us between kernels. Only the eager figure is fitted; the other two are assumed.
LAUNCH_S = {"eager": 10e-6, "compiled": 5e-6, "cuda graphs": 1e-6}
# Assumed MFU of the compute term. Fitted on the seed's fp32 eager epochs (ResNeSt-50
# bottleneck, ImageNet stem, CIFAR-10, batch 128): with 10 us per kernel, 15% of the fp32 peak
# gives P100 SXM2 30 s and V100 SXM2 22 s against the seed's 31 and 22 (its K80, 149 s, is 2x
# slower than the model says). No tensor-core epoch is on record: the same 15% is assumed.
ASSUMED_MFU = 0.15
# Bytes under autocast (bf16/fp16): activations and gradients in half precision.
HALF_BYTES = 0.5
SEED_FIT = "eager fit to the seed's P100/V100 fp32 epochs"


@dataclass(frozen=True)
class StepCost:
    """Seconds per training step, by term."""

    launch: float
    compute: float
    memory: float

    @property
    def total(self) -> float:
        return self.launch + self.compute + self.memory

    @property
    def bound(self) -> str:
        """The largest term: what a faster step has to cut."""
        terms = {"launch": self.launch, "compute": self.compute, "memory": self.memory}
        return max(terms, key=terms.__getitem__)

    def times(self, steps: int) -> StepCost:
        return StepCost(self.launch * steps, self.compute * steps, self.memory * steps)


def execution(compiled: bool, compile_mode: str | None) -> str:
    """The LAUNCH_S key a step runs under."""
    if not compiled:
        return "eager"
    return "cuda graphs" if compile_mode == "reduce-overhead" else "compiled"


@functools.lru_cache(maxsize=64)
def step_work(
    name: str, num_classes: int, batch_size: int, overrides: tuple[tuple[str, object], ...]
) -> StepWork:
    """One 32x32 training step of `name` with model `overrides`; cached, plans repeat models."""
    import torch

    from resnest_bench import models
    from resnest_bench.models.profile import count_train_step

    with torch.device("meta"):
        model = models.create_model(name, num_classes=num_classes, **dict(overrides))
    return count_train_step(model, 32, batch_size)


def step_cost(
    work: StepWork, peak_flops: float | None, memory_gbps: float, precision: str, mode: str
) -> StepCost | None:
    """One step of `work` on a card with this dense peak at `precision` and this memory
    bandwidth (harness.gpu.catalog); None when either is not on record."""
    if not peak_flops or not memory_gbps:
        return None
    fused = mode != "eager"
    kernels = 2 * work.dense_kernels if fused else work.kernels
    moved = 2 * work.dense_bytes if fused else work.bytes
    if precision in ("bf16", "fp16"):
        moved *= HALF_BYTES
    return StepCost(
        launch=kernels * LAUNCH_S[mode],
        compute=work.flops / (peak_flops * ASSUMED_MFU),
        memory=moved / (memory_gbps * 1e9),
    )


def steps_per_epoch(images: int, batch_size: int) -> int:
    """Training drops the last partial batch (harness.data.loader); at least one step."""
    return max(1, images // batch_size)


_LAUNCHES = ", ".join(f"{mode} {seconds * 1e6:g} us" for mode, seconds in LAUNCH_S.items())
ASSUMPTION = (
    f"per step: kernels x host cost per kernel ({_LAUNCHES})"
    f" + FLOPs at {ASSUMED_MFU:.0%} MFU of the dense peak + bytes at the memory bandwidth "
    f"(bf16/fp16: half the bytes); a compiled step counted as its convolutions and matmuls each "
    f"with one fused kernel; {SEED_FIT}; transfer counted for the larger block; evaluation, "
    "data loading and deploy excluded"
)
