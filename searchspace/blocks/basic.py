"""ResNet basic block (ResNet-18/34): two kxk conv-BN, optional SE, residual add, act.

kxk conv (stride) - BN - act - kxk conv - BN - optional squeeze-excitation, + shortcut, act.
The shortcut is identity when stride 1 and in == out, else 1x1 conv (stride) + BN, or with
``avg_down`` (ResNet-D) a 2x2 average pool then a 1x1 conv + BN.
"""

from __future__ import annotations

from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily
from searchspace.blocks.shortcut import SE_ROUND, ResidualBlock, make_shortcut, se_layer
from searchspace.layers import ACTIVATIONS, ConvBNAct
from searchspace.params import Param

PARAMS = (
    Param("kernel", int, 3, "kernel size of both convs", choices=(3, 5), search=(3, 5)),
    Param("se", float, 0.0, "squeeze-excitation ratio on the block output (0 = no SE); squeeze = "
          "make_divisible(out * se, 8) (see se_round; SE-ResNet: 0.0625)", low=0.0, high=1.0, search=(0.0, 0.25)),
    SE_ROUND,
    Param("avg_down", bool, False, "ResNet-D shortcut: average pool then 1x1 conv", search=(False, True)),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)


def build(args: BlockArgs) -> nn.Module:
    k, act = args["kernel"], args["act"]
    body = nn.Sequential(
        ConvBNAct(args.in_ch, args.out, k, args.stride, act=act),
        ConvBNAct(args.out, args.out, k, 1, act="identity"),
        *se_layer(args.out, args["se"], args["se_round"]),
    )
    return ResidualBlock(body, make_shortcut(args.in_ch, args.out, args.stride, args["avg_down"]), act)


FAMILY = BlockFamily(
    name="basic",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=build,
)
