"""Other members of the dense, csp, darknet and preact families, derived from the zoo by the same rules.

Each entry is (build the genotype, reference params, reference MACs at its resolution), measured from
torchvision 0.28 / timm 1.0.31 with ``experiments/reference_counts.py``. Shared by
tests/test_blocks_csp_dense.py and experiments/weight_check.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from searchspace import Genotype, load_genotype, parse_genotype


def _zoo(name: str) -> dict:
    return copy.deepcopy(load_genotype(f"zoo:{name}").to_dict())


def _densenet(name: str, stem: int, growth: int, layers: tuple[int, ...]) -> Genotype:
    """torchvision's DenseNet rule: each transition halves the width, each block adds layers * growth."""
    raw, width = _zoo("densenet121"), stem
    raw["name"], raw["stem"]["out"] = name, stem
    for stage, n in zip(raw["stages"], layers, strict=True):
        block = stage["blocks"][0]
        width = (width if block["stride"] == 1 else width // 2) + n * growth
        block.update(out=width, layers=n, growth=growth)
    return parse_genotype(raw)


def _darknet(name: str, repeats: tuple[int, ...]) -> Genotype:
    raw = _zoo("darknet53")
    raw["name"] = name
    for stage, n in zip(raw["stages"], repeats, strict=True):
        stage["blocks"][0]["repeat"] = n
    return parse_genotype(raw)


def _cspresnet(name: str, wide: bool) -> Genotype:
    """cspresnet50d (deep stem) and cspresnet50w (also twice the width, bottle 0.25, block ratio 0.5)."""
    raw = _zoo("cspresnet50")
    raw["name"] = name
    raw["stem"] = {"type": "deep", "out": 64, "mid": 32, "act": "leaky_relu", "pool": "max"}
    for stage in raw["stages"]:
        block = stage["blocks"][0]
        if wide:
            block.update(out=block["out"] * 2, expand=1.0, block_ratio=0.5, expansion=4)
    return parse_genotype(raw)


def _resnetv2(name: str, repeats: tuple[int, ...], basic: bool) -> Genotype:
    raw = _zoo("resnetv2_50")
    raw["name"] = name
    for i, (stage, n) in enumerate(zip(raw["stages"], repeats, strict=True)):
        stage["blocks"][0]["repeat"] = n
        if basic:
            stage["blocks"][0].update(form="basic", out=64 * 2 ** i)
    return parse_genotype(raw)


MEMBERS: dict[str, tuple[Callable[[], Genotype], int, int]] = {
    "densenet201": (lambda: _densenet("densenet201", 64, 32, (6, 12, 48, 32)), 20013928, 4291365888),
    "densenet161": (lambda: _densenet("densenet161", 96, 48, (6, 12, 36, 24)), 28681000, 7727907072),
    "cspresnet50d": (lambda: _cspresnet("cspresnet50d", wide=False), 21635400, 4830240768),
    "cspresnet50w": (lambda: _cspresnet("cspresnet50w", wide=True), 28118216, 5020008448),
    "darknet17": (lambda: _darknet("darknet17", (1, 1, 1, 1, 1)), 14304840, 3245318144),
    "darknet21": (lambda: _darknet("darknet21", (1, 1, 1, 2, 2)), 20863048, 3916406784),
    "resnetv2_18": (lambda: _resnetv2("resnetv2_18", (2, 2, 2, 2), basic=True), 11687720, 1814073344),
    "resnetv2_34": (lambda: _resnetv2("resnetv2_34", (3, 4, 6, 3), basic=True), 21795880, 3663761408),
    "resnetv2_101": (lambda: _resnetv2("resnetv2_101", (3, 4, 23, 3), basic=False), 44541480, 7801405440),
}
