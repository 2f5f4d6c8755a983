"""Model configs without torch: what shapes a network, and the named configs `create_model` knows.

Kept apart from the network code so suites can be validated and configs listed without
importing torch. Configs are all "-D" style networks (deep stem, average-pool shortcut, avd
striding) as published.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from resnest_bench.models.registry import ModelError, register

BlockKind = Literal["bottleneck", "basic"]
StemKind = Literal["imagenet", "cifar"]
STEMS: tuple[str, ...] = ("imagenet", "cifar")
BLOCKS: tuple[str, ...] = ("bottleneck", "basic")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes a network; a named config plus the user's overrides."""

    name: str
    block: BlockKind
    layers: tuple[int, int, int, int]
    stem: StemKind = "imagenet"
    stem_width: int = 32  # deep stem: 3 -> w -> w -> 2w channels; cifar stem: 3 -> 2w
    base_planes: int = 64  # planes of stage 1, doubled at each later stage
    radix: int = 2  # 0: plain ResNet conv; 1: sigmoid-gated; >= 2: softmax over splits
    cardinality: int = 1
    bottleneck_width: int = 64
    avd: bool = True  # stride by a 3x3 average pool after the 3x3 conv instead of in it
    avg_down: bool = True  # stride the shortcut by average pooling before its 1x1 conv
    num_classes: int = 1000
    input_size: int = 224

    def __post_init__(self) -> None:
        problems = []
        if self.block not in BLOCKS:
            problems.append(f"block must be one of {BLOCKS}, got {self.block!r}")
        if self.stem not in STEMS:
            problems.append(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.radix < 0:
            problems.append(f"radix must be >= 0, got {self.radix}")
        if self.cardinality < 1:
            problems.append(f"cardinality must be >= 1, got {self.cardinality}")
        if self.num_classes < 1:
            problems.append(f"num_classes must be >= 1, got {self.num_classes}")
        if len(self.layers) != 4 or min(self.layers) < 1:
            problems.append(f"layers must be four counts >= 1, got {self.layers}")
        if problems:
            raise ModelError(f"{self.name}: " + "; ".join(problems))

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def feature_channels(self) -> int:
        return self.base_planes * 8 * self.expansion

    def with_overrides(self, **overrides: object) -> ModelConfig:
        """Apply non-None overrides; the cifar stem implies 32x32 inputs unless one is given."""
        given = {key: value for key, value in overrides.items() if value is not None}
        if given.get("stem") == "cifar" and "input_size" not in given:
            given["input_size"] = 32
        return replace(self, **given)


_TINY = {"stem": "cifar", "stem_width": 8, "num_classes": 10, "input_size": 32}
_MOBILE = {**_TINY, "stem_width": 16}
_MOBILE_WIDE = {**_TINY, "stem_width": 24}
# Named configs. Parameter counts at 1000 classes match the published model zoo exactly
# (see tests/test_models.py); input sizes are the model card's.
_ZOO = (
    ModelConfig("resnest14d", "bottleneck", (1, 1, 1, 1)),
    ModelConfig("resnest26d", "bottleneck", (2, 2, 2, 2)),
    ModelConfig("resnest50d", "bottleneck", (3, 4, 6, 3)),
    ModelConfig("resnest101e", "bottleneck", (3, 4, 23, 3), stem_width=64, input_size=256),
    ModelConfig("resnest200e", "bottleneck", (3, 24, 36, 3), stem_width=64, input_size=320),
    ModelConfig("resnest269e", "bottleneck", (3, 30, 48, 8), stem_width=64, input_size=416),
    # The seed study's basic-block ResNeSt-50: same stages and -D tricks, basic blocks.
    ModelConfig("resnest50d-basic", "basic", (3, 4, 6, 3)),
    # ResNet-50-D: resnest50d without split attention (radix 0), the baseline from the same code.
    ModelConfig("resnet50", "bottleneck", (3, 4, 6, 3), radix=0, avd=False),
    # Tiny configs for tests and smoke runs: CIFAR-sized, 0.14M and 0.33M parameters.
    ModelConfig("resnest-tiny", "bottleneck", (1, 1, 1, 1), base_planes=8, **_TINY),
    ModelConfig("resnest-tiny-basic", "basic", (1, 1, 1, 1), base_planes=16, **_TINY),
    # Mobile budget (TPSNet's rule: under 5M parameters at 10 classes), CIFAR stem at 32x32.
    # Parameter counts are asserted in tests/test_sweep_configs.py; MACs: `resnest-bench models`.
    ModelConfig("resnest-mobile-s", "basic", (1, 1, 1, 1), base_planes=32, **_MOBILE),
    ModelConfig("resnest-mobile-m", "basic", (2, 2, 2, 2), base_planes=32, **_MOBILE),
    ModelConfig("resnest-mobile-l", "basic", (2, 2, 2, 2), base_planes=40, **_MOBILE_WIDE),
    ModelConfig(
        "resnest-mobile-s-bottleneck", "bottleneck", (2, 2, 2, 2), base_planes=16, **_MOBILE
    ),
    # ResNeSt-50's depth (3, 4, 6, 3) at a quarter and at 7/16 of its width.
    ModelConfig(
        "resnest-mobile-m-bottleneck", "bottleneck", (3, 4, 6, 3), base_planes=16, **_MOBILE
    ),
    ModelConfig(
        "resnest-mobile-l-bottleneck", "bottleneck", (3, 4, 6, 3), base_planes=28, **_MOBILE
    ),
)
for _cfg in _ZOO:
    register(_cfg)
