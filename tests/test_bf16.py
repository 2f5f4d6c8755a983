"""bf16 targets: named "<family>:bf16", build their family's fp32 files, run only where the CPU
has AVX512_BF16 or AMX (elsewhere a skipped row with the reason), and stay near fp32."""

from __future__ import annotations

import numpy as np
import pytest

from resnest_bench import models
from resnest_bench.harness.checkpoints import save_torch_artifact
from resnest_bench.harness.config import DeploySection
from resnest_bench.harness.errors import BenchError
from resnest_bench.harness.formats import formats_to_build
from resnest_bench.harness.host import envinfo
from resnest_bench.harness.measure import select_targets
from resnest_bench.harness.runtimes import get_runtime


def test_bf16_targets_are_named_by_family_and_build_the_familys_files():
    names = [(t.name, t.runtime, t.kind) for t in select_targets(("torch-bf16",))]
    assert names == [("torch-eager:bf16", "torch-bf16", "state_dict")]
    section = DeploySection(runtimes=("openvino-bf16",))
    assert formats_to_build(section) == ("onnx", "int8", "ort", "openvino")


def test_a_cpu_without_bf16_skips_with_the_reason(monkeypatch):
    monkeypatch.setattr(envinfo, "isa_flags", lambda: ["avx2"])
    with pytest.raises(BenchError, match="no AVX512_BF16 or AMX: bf16 would be emulated"):
        get_runtime("torch-bf16")
    monkeypatch.setattr(envinfo, "isa_flags", lambda: ["avx2", "avx512f", "avx512_bf16"])
    assert envinfo.bf16_missing() is None


@pytest.mark.skipif(envinfo.bf16_missing() is not None, reason="this CPU has no native bf16")
def test_eager_bf16_stays_near_fp32_on_real_digits(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.repeat(digits.images[:64, None], 3, axis=1) / 16.0  # 8x8 grey -> 3 channels
    x = np.ascontiguousarray(np.pad(images, ((0, 0), (0, 0), (12, 12), (12, 12))), np.float32)
    save_torch_artifact(models.create_model("resnest-tiny").eval(), tmp_path / "model.pt")
    fp32, bf16 = get_runtime("torch-eager", threads=1), get_runtime("torch-bf16", threads=1)
    for runtime in (fp32, bf16):
        runtime.load(tmp_path / "model.pt")
    reference, low = fp32.run(x), bf16.run(x)
    assert low.dtype == np.float32 and low.shape == reference.shape == (64, 10)
    scale = float(np.abs(reference).max())
    assert float(np.abs(low - reference).max()) < 0.05 * scale  # bf16 keeps 8 bits of mantissa
    assert not np.array_equal(low, reference)  # it really ran in bf16
