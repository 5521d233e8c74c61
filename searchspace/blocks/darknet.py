"""Darknet-53 residual block (timm DarkBlock), with the stage's 3x3 downsampling conv.

1x1 conv-BN-act to ``round(out * bottle_ratio)`` -> 3x3 conv-BN-act back to ``out``, + identity
(no activation after the add). When the block has stride 2 or changes the width, a 3x3
conv-BN-act (stride) to ``out`` comes first (timm DarkStage's ``conv_down``) and the residual
starts after it. Activation leaky ReLU by default, as Darknet.
"""

from __future__ import annotations

from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.layers import ACTIVATIONS, ConvBNAct
from searchspace.params import Param

PARAMS = (
    Param("bottle_ratio", float, 0.5, "width of the 1x1 conv: round(out * bottle_ratio)", low=0.05, high=4.0,
          search=(0.5, 1.0)),
    Param("act", str, "leaky_relu", "activation", choices=ACTIVATIONS, search=("leaky_relu", "relu")),
)


def mid_width(args: BlockArgs) -> int:
    """Width of the 1x1 conv: ``int(round(out * bottle_ratio))`` (timm's rule)."""
    return int(round(args.out * args["bottle_ratio"]))


def has_down(args: BlockArgs) -> bool:
    """A 3x3 downsampling conv comes first at stride 2 or when the width changes."""
    return args.stride > 1 or args.in_ch != args.out


def check(args: BlockArgs, path: str) -> None:
    require(mid_width(args) >= 1, f"{path}.bottle_ratio",
            f"{args['bottle_ratio']:g} gives round({args.out} * {args['bottle_ratio']:g}) = 0 channels; "
            f"use a larger bottle_ratio or out")


class DarkBlock(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        act, out = args["act"], args.out
        self.down = ConvBNAct(args.in_ch, out, 3, args.stride, act=act) if has_down(args) else nn.Identity()
        self.conv1 = ConvBNAct(out, mid_width(args), 1, act=act)
        self.conv2 = ConvBNAct(mid_width(args), out, 3, act=act)

    def forward(self, x):
        x = self.down(x)
        return x + self.conv2(self.conv1(x))


FAMILY = BlockFamily(
    name="darknet",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=DarkBlock,
    check=check,
)
