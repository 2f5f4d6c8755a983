"""The closed sets of values suite keys take (steps, data sets, stems, precisions, ...).

Their own module, below config: the flags, the precision policy (gpu.accel) and config's
validation all read them, and none of those may import another for it.
"""

from __future__ import annotations

from typing import Literal

Step = Literal["train", "transfer", "export", "deploy"]
DatasetName = Literal["cifar10", "cifar100", "synthetic", "folder"]
Stem = Literal["imagenet", "cifar"]
# auto: by the card (harness.gpu.catalog)
Precision = Literal["auto", "fp32", "tf32", "bf16", "fp16"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
# auto: where Triton runs the card (harness.gpu.catalog.resolve_compile)
Compile = bool | Literal["auto"]
LrScaling = Literal["none", "linear"]  # linear: lr x ranks (Goyal et al. 2017)
Spinning = Literal["on", "off", "auto"]  # idle threads; auto: sleep when the host is shared
CalibrationMethod = Literal["minmax", "entropy", "percentile"]  # how int8 ranges are drawn
