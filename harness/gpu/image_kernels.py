"""Whether harness.gpu.catalog's kernel table for the image this process runs in is what its
libraries really carry: torch.cuda.get_arch_list() (answers without a GPU) and the fatbins of
onnxruntime-gpu's CUDA provider. A stale table would route a GPU to an image that fails at its
first kernel, so `doctor` checks it in every GPU image and CI runs doctor in the built image.
"""

from __future__ import annotations

from pathlib import Path

from resnest_bench.harness.gpu import catalog as gpus
from resnest_bench.harness.gpu.kernels import Kernels, library_kernels

ORT_CUDA_PROVIDER = "libonnxruntime_providers_cuda.so"


def ort_cuda_provider() -> Path | None:
    """The installed onnxruntime's CUDA provider library, None for a CPU onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    path = Path(onnxruntime.__file__).parent / "capi" / ORT_CUDA_PROVIDER
    return path if path.is_file() else None


def _compare(what: str, table: Kernels | None, real: Kernels | None) -> list[str]:
    if table == real:
        return []
    shown = [k.describe() if k is not None else "no CUDA build" for k in (table, real)]
    return [f"{what}: the table says {shown[0]}, the installed one has {shown[1]}"]


def table_mismatches(image: gpus.Image) -> list[str]:
    """Every difference between `image`'s table and the installed torch and onnxruntime."""
    import torch

    real_torch = Kernels.from_arch_list(torch.cuda.get_arch_list()) if torch.version.cuda else None
    provider = ort_cuda_provider()
    real_ort = library_kernels(provider) if provider is not None else None
    return [
        *_compare(f"torch {torch.__version__}", image.torch_kernels, real_torch),
        *_compare(image.onnxruntime, image.ort_kernels, real_ort),
    ]
