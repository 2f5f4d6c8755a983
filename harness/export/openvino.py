"""OpenVINO IRs of the exported model: fp32, and int8 by NNCF post-training quantization.

The IR is converted from the same ONNX graph ONNX Runtime runs (after ORT's quantization
pre-processing, which names every node), so both runtimes see one model. int8 goes through the
same calibration images (training set, the model's own preprocessing) and the same held-out
accuracy gate as ORT's int8; NNCF's PERFORMANCE preset (symmetric activations) with its fast
bias correction (on by default), and OpenVINO picks its own kernels per CPU. When all-int8
loses accuracy, the fewest most sensitive layers stay fp32 through NNCF's ignored_scope,
ranked in the IR itself (harness.export.sensitivity).
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from pathlib import Path

import numpy as np

from resnest_bench.harness.export.gate import (
    GateData,
    artifact_bytes,
    gate_ladder,
    int8_record,
    minmax_only,
)
from resnest_bench.harness.export.int8 import CALIBRATION_BATCH, prepare_onnx, quiet
from resnest_bench.harness.export.sensitivity import rank_in_graph, ranked_plans
from resnest_bench.harness.results.deployment import ConvertedRecord, Int8Settings
from resnest_bench.harness.runtimes.openvino import OpenVinoCpu

# The IR's layers sensitivity ranking may keep fp32 (a Conv with bias is Convolution + Add).
WEIGHTED_OPS = ("Convolution", "GroupConvolution", "MatMul")


def build_openvino(
    onnx_fp32: Path, fp32_xml: Path, int8_xml: Path, data: GateData
) -> ConvertedRecord:
    """Write the fp32 and the gated int8 IR (each an .xml with its .bin); the record names
    both files."""
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)  # its INFO lines and progress bars are not our output

    score = data.scorer(OpenVinoCpu)

    with tempfile.TemporaryDirectory(prefix=".openvino.", dir=int8_xml.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        prepare_onnx(onnx_fp32, prepared)
        model = ov.convert_model(str(prepared))
        ov.save_model(model, str(fp32_xml), compress_to_fp16=False)
        fp32_top1 = score(fp32_xml)
        layers = [
            op.get_friendly_name()
            for op in model.get_ordered_ops()
            if op.get_type_name() in WEIGHTED_OPS
        ]

        def quantize_with(images: np.ndarray, excluded: tuple[str, ...], out: Path) -> None:
            batches = [
                images[i : i + CALIBRATION_BATCH] for i in range(0, len(images), CALIBRATION_BATCH)
            ]
            with quiet():
                quantized = nncf.quantize(
                    model,
                    nncf.Dataset(batches),
                    preset=nncf.QuantizationPreset.PERFORMANCE,
                    subset_size=len(batches),
                    fast_bias_correction=True,  # NNCF's default, said here: the report names it
                    ignored_scope=nncf.IgnoredScope(names=list(excluded)),
                )
            ov.save_model(quantized, str(out), compress_to_fp16=False)

        def loaded(xml: Path):
            runtime = OpenVinoCpu(threads=data.threads)
            runtime.load(xml)
            return runtime.run

        def quick(kept: tuple[str, ...]):
            quantize_with(data.quick_calibration_x, kept, Path(work) / "quick.xml")
            return loaded(Path(work) / "quick.xml")

        plans = itertools.chain(
            [("nncf", ())],
            ranked_plans(
                "nncf", lambda: rank_in_graph(layers, quick, loaded(fp32_xml), data.ranking_x)
            ),
        )
        outcome = gate_ladder(
            int8_xml,
            "nncf",
            plans,
            lambda excluded, out: quantize_with(data.calibration_x, excluded, out),
            score,
            fp32_top1=fp32_top1,
            max_drop_pts=data.max_drop_pts,
        )
    settings = Int8Settings(
        method="NNCF post-training quantization (OpenVINO)",
        quant_format="fakequantize",
        per_channel=True,
        calibration=minmax_only(data.calibration_method, "NNCF here")
        + ", PERFORMANCE preset, fast bias correction",
        calibration_images=len(data.calibration_x),
        schemes=[],
        scheme_reason="OpenVINO picks its int8 kernels for the CPU it runs on",
    )
    return ConvertedRecord(
        version=ov.__version__,
        fp32_path=fp32_xml.name,
        fp32_size_bytes=artifact_bytes(fp32_xml),
        fp32_top1=fp32_top1,
        int8=int8_record(outcome, int8_xml, settings, data, fp32_top1),
    )
