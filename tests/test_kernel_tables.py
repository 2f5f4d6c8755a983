"""The kernel table of harness.gpu.catalog against the torch and onnxruntime installed here: only
meaningful where they are one of the images' CUDA builds (inside a GPU image). Elsewhere, with
a CPU torch (get_arch_list() is []), it skips with the reason; CI checks the same thing in the
built bench-gpu image through doctor's "image kernels" line (.ci/docker.sh)."""

from __future__ import annotations

import pytest
import torch

from resnest_bench.harness.gpu import catalog as gpus
from resnest_bench.harness.gpu.image_kernels import ort_cuda_provider, table_mismatches


def _this_build() -> gpus.Image | None:
    version = torch.__version__.split("+")[0]
    return next(
        (i for i in gpus.IMAGES if (i.torch, i.cuda) == (version, torch.version.cuda)), None
    )


def test_the_table_is_what_the_installed_libraries_carry():
    if torch.version.cuda is None:
        assert torch.cuda.get_arch_list() == []  # a CPU build carries no kernels
        pytest.skip("CPU build of torch: the table is checked inside the GPU image (CI: doctor)")
    image = _this_build()
    if image is None:
        pytest.skip(f"torch {torch.__version__} is not the build of any image")
    if image.ort_kernels is not None and ort_cuda_provider() is None:
        pytest.skip(f"{image.onnxruntime} is not installed here")
    assert table_mismatches(image) == []
