"""ResNet / ResNeXt bottleneck (torchvision v1.5: stride on the 3x3), optional SE.

1x1 conv-BN-act to ``width`` -> 3x3 grouped conv (stride) -BN-act -> 1x1 conv-BN to ``out`` ->
optional squeeze-excitation, + shortcut, act. ``width = int(out / expansion * (base_width / 64))
* groups`` (ResNet-50: groups 1, base_width 64; ResNeXt-50 32x4d: groups 32, base_width 4).
The shortcut is as in the basic block (``avg_down`` for ResNet-D).
"""

from __future__ import annotations

from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.blocks.shortcut import SE_ROUND, ResidualBlock, make_shortcut, se_layer
from searchspace.layers import ACTIVATIONS, ConvBNAct
from searchspace.params import Param

PARAMS = (
    Param("groups", int, 1, "groups of the 3x3 conv (ResNeXt cardinality)", low=1, high=64,
          search=(1, 2, 4)),
    Param("base_width", int, 64, "channels per group per 64 bottleneck channels", low=1, high=256,
          search=(32, 64)),
    Param("expansion", int, 4, "out / bottleneck channels", low=1, high=8, search=(2, 4)),
    Param("se", float, 0.0, "squeeze-excitation ratio on the block output (0 = no SE); squeeze = "
          "make_divisible(out * se, 8) (see se_round; SE-ResNet: 0.0625)", low=0.0, high=1.0, search=(0.0, 0.25)),
    SE_ROUND,
    Param("avg_down", bool, False, "ResNet-D shortcut: average pool then 1x1 conv", search=(False, True)),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)


def group_width(out: int, expansion: int, base_width: int) -> int:
    """Channels per group: ``int(out / expansion * (base_width / 64))`` (torchvision's rule)."""
    return int(out / expansion * (base_width / 64.0))


def checked_group_width(args: BlockArgs, path: str) -> int:
    """Channels per group of a bottleneck-shaped block; GenotypeError when that is 0."""
    per_group = group_width(args.out, args["expansion"], args["base_width"])
    require(per_group >= 1, f"{path}.base_width",
            f"out {args.out} / expansion {args['expansion']} * base_width {args['base_width']} / 64 "
            f"gives 0 channels per group; use a larger out or base_width or a smaller expansion")
    return per_group


def check(args: BlockArgs, path: str) -> None:
    checked_group_width(args, path)


def build(args: BlockArgs) -> nn.Module:
    act, groups = args["act"], args["groups"]
    width = group_width(args.out, args["expansion"], args["base_width"]) * groups
    body = nn.Sequential(
        ConvBNAct(args.in_ch, width, 1, act=act),
        ConvBNAct(width, width, 3, args.stride, groups=groups, act=act),
        ConvBNAct(width, args.out, 1, act="identity"),
        *se_layer(args.out, args["se"], args["se_round"]),
    )
    return ResidualBlock(body, make_shortcut(args.in_ch, args.out, args.stride, args["avg_down"]), act)


FAMILY = BlockFamily(
    name="bottleneck",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=build,
    check=check,
)
