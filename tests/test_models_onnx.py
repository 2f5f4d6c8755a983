"""Both ONNX exporters trace the split-attention network with a dynamic batch axis."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from resnest_bench import models


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
@pytest.mark.parametrize(("name", "radix"), [("resnest-tiny", 2), ("resnest-tiny-basic", 1)])
def test_onnx_export_matches_pytorch(tmp_path, dynamo: bool, name: str, radix: int) -> None:
    torch.manual_seed(0)
    model = models.create_model(name, radix=radix, cardinality=2).eval()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.weight.data.uniform_(0.5, 1.5)  # undo zero-init-last: every branch must count
        bn.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "model.onnx"
    example = torch.randn(2, 3, 32, 32)
    kwargs = (
        {"dynamic_shapes": {"x": {0: torch.export.Dim("batch", min=1, max=256)}}}
        if dynamo
        else {"dynamic_axes": {"x": {0: "batch"}, "logits": {0: "batch"}}}
    )
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        dynamo=dynamo,
        **kwargs,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # a batch size other than the traced one proves the axis is dynamic
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"x": x.numpy()})
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4
