"""OpenVINO's CPU plugin on an IR (.xml + .bin): fp32, and int8 from NNCF post-training
quantization (harness.export.openvino).

Compiled for latency with the runtime's threads. Inference precision is pinned to f32: on CPUs
with AVX512-BF16 or AMX, OpenVINO otherwise runs an fp32 model in bf16, and the fp32 row would
not be fp32.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from resnest_bench.harness.host.envinfo import bf16_missing
from resnest_bench.harness.runtimes.base import Package, Runtime, register


@register
class OpenVinoCpu(Runtime):
    name = "openvino"
    artifacts = ("openvino_fp32", "openvino_int8")
    inference_precision: ClassVar[str] = "f32"
    package = Package("openvino", "openvino", "openvino")

    def _load(self, path: Path) -> None:
        import openvino as ov

        core = ov.Core()
        self._compiled = core.compile_model(
            core.read_model(str(path)),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": self.threads,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": self.inference_precision,
            },
        )
        self._request = self._compiled.create_infer_request()
        self._output = self._compiled.output(0)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        result = self._request.infer({0: batch})
        return np.asarray(result[self._output], dtype=np.float32)


@register
class OpenVinoBf16(OpenVinoCpu):
    """The fp32 IR run in bf16 (OpenVINO's own default on CPUs with AVX512_BF16 or AMX), as a
    target of its own beside the pinned-f32 one, under the same accuracy limit."""

    name = "openvino-bf16"
    family = "openvino"
    precision = "bf16"
    artifacts = ("openvino_fp32",)
    inference_precision = "bf16"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return super().unavailable_reason() or bf16_missing()
