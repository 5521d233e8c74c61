"""Other members of the classic families (issue 14), derived from the zoo by the same rules.

Each entry is (build the genotype, reference params, reference MACs at its resolution), measured from
torchvision 0.28 / timm 1.0.31 with ``experiments/reference_counts.py``. Shared by
tests/test_blocks_classic.py and experiments/weight_check.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from searchspace import Genotype, load_genotype, parse_genotype, with_scaling


def _zoo(name: str) -> dict:
    return copy.deepcopy(load_genotype(f"zoo:{name}").to_dict())


def _vgg(stages: list[int], name: str) -> Genotype:
    """VGG with BN from its per-stage conv counts.

    The stem is the first conv; every stage ends with a stride-2 plain block (conv, then the 2x2
    pool). A first stage of one conv (VGG-11) is the stem alone, which then pools (``max2``).
    """
    raw = _zoo("vgg16_bn")
    template = raw["stages"][0]["blocks"][0]
    widths = [64, 128, 256, 512, 512]
    if stages[0] == 1:
        raw["stem"]["pool"] = "max2"
        stages, widths = stages[1:], widths[1:]
    else:
        stages = [stages[0] - 1, *stages[1:]]
    raw["stages"] = []
    for convs, out in zip(stages, widths, strict=True):
        blocks = [{**template, "repeat": convs - 1, "out": out, "stride": 1}] if convs > 1 else []
        raw["stages"].append({"blocks": blocks + [{**template, "repeat": 1, "out": out, "stride": 2}]})
    raw["name"] = name
    return parse_genotype(raw)


def _squeezenet1_0() -> Genotype:
    raw = _zoo("squeezenet1_1")
    raw["stem"].update(out=96, kernel=7)
    fire = raw["stages"][0]["blocks"][0]

    def entry(repeat: int, out: int, stride: int = 1) -> dict:
        return {**fire, "repeat": repeat, "out": out, "stride": stride}

    raw["stages"] = [{"blocks": [entry(2, 128), entry(1, 256)]},
                     {"blocks": [entry(1, 256, 2), entry(2, 384), entry(1, 512)]},
                     {"blocks": [entry(1, 512, 2)]}]
    raw["name"] = "squeezenet1_0"
    return parse_genotype(raw)


def _resnet(name: str, block: str, repeats: list[int], **params) -> Genotype:
    raw = _zoo("seresnet50" if block == "bottleneck" else "resnet18")
    for stage, repeat in zip(raw["stages"], repeats, strict=True):
        stage["blocks"][0].update(repeat=repeat, **params)
    raw["name"] = name
    return parse_genotype(raw)


def _efficientnet_v2_m() -> Genotype:
    raw = _zoo("efficientnet_v2_s")
    rows = [(3, 24), (5, 48), (5, 80), (7, 160), (14, 176), (18, 304)]
    for stage, (repeat, out) in zip(raw["stages"], rows, strict=True):
        stage["blocks"][0].update(repeat=repeat, out=out)
    last = raw["stages"][-1]["blocks"][0]
    raw["stages"].append({"blocks": [{**last, "repeat": 5, "out": 512, "stride": 1}]})
    raw["input"]["resolution"] = 480
    raw["head"]["dropout"] = 0.3
    raw["name"] = "efficientnet_v2_m"
    return parse_genotype(raw)


SE_TIMM = {"se": 0.0625, "se_round": "timm"}
MEMBERS: dict[str, tuple[Callable[[], Genotype], int, int]] = {
    "vgg11_bn": (lambda: _vgg([1, 1, 2, 2, 2], "vgg11_bn"), 132868840, 7609090048),
    "vgg19_bn": (lambda: _vgg([2, 2, 4, 4, 4], "vgg19_bn"), 143678248, 19632062464),
    "squeezenet1_0": (_squeezenet1_0, 1248424, 818924576),
    "seresnet18": (lambda: _resnet("seresnet18", "basic", [2, 2, 2, 2], **SE_TIMM), 11779624, 1814161408),
    "seresnet34": (lambda: _resnet("seresnet34", "basic", [3, 4, 6, 3], **SE_TIMM), 21960416, 3663920128),
    "wide_resnet101_2": (lambda: _resnet("wide_resnet101_2", "bottleneck", [3, 4, 23, 3], se=0.0,
                                         se_round="make_divisible", base_width=128), 126886696, 22753050624),
    "mobilenetv1_125": (lambda: with_scaling(load_genotype("zoo:mobilenetv1_100"), width=1.25), 6270840,
                        879516800),
    "efficientnet_v2_m": (_efficientnet_v2_m, 54139356, 24582460384),
}
