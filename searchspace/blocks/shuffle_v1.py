"""ShuffleNetV1 unit: grouped 1x1 -> channel shuffle -> depthwise 3x3 -> grouped 1x1, add or concat.

1x1 group conv-BN-act to the bottleneck width, channel shuffle (``groups``), depthwise kxk
(stride)-BN, 1x1 group conv-BN. Stride 1: + input, act (needs in == out). Stride 2: concatenated
with the input avg-pooled (3x3, stride 2, padding 1), act; the branch makes out - in channels. The
bottleneck is int(out * bottleneck) rounded up to a multiple of groups (ShuffleNet: out / 4).
``group_in: false`` makes the first 1x1 ungrouped (the paper's first unit after the stem, whose
input is too narrow). A stride-2 unit with out <= in cannot concatenate: there the pooled input
goes through a 1x1 conv-BN to out and is added (the branch makes out channels).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.blocks.shuffle import channel_shuffle
from searchspace.layers import ACTIVATIONS, ConvBNAct, activation
from searchspace.params import Param

PARAMS = (
    Param("groups", int, 3, "groups of the 1x1 convs and of the channel shuffle", low=1, high=8,
          search=(1, 2, 4, 8)),
    Param("group_in", bool, True, "the first 1x1 conv is grouped (false: ShuffleNet's first unit)"),
    Param("bottleneck", float, 0.25, "bottleneck width = int(out * bottleneck), rounded up to a multiple "
          "of groups", low=0.05, high=1.0),
    Param("kernel", int, 3, "depthwise kernel size", choices=(3, 5, 7), search=(3, 5)),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "hswish")),
)


def keeps_width(stride: int) -> bool:
    """A stride-1 unit adds its input: out must equal in."""
    return stride == 1


def concatenates(args: BlockArgs) -> bool:
    """The stride-2 unit of the paper: the branch's out - in channels next to the pooled input."""
    return args.stride > 1 and args.out > args.in_ch


def widths(args: BlockArgs) -> tuple[int, int]:
    """(bottleneck, branch output) channels."""
    g = args["groups"]
    mid = g * math.ceil(max(1, int(args.out * args["bottleneck"])) / g)
    return mid, args.out - args.in_ch if concatenates(args) else args.out


def check(args: BlockArgs, path: str) -> None:
    g = args["groups"]
    mid, branch = widths(args)
    if keeps_width(args.stride):
        require(args.in_ch == args.out, f"{path}.out",
                f"{args.out} differs from the block input width {args.in_ch}; a stride-1 unit adds its input, "
                f"so out must be {args.in_ch}; use stride 2 to change the width")
    if args["group_in"]:
        require(args.in_ch % g == 0, f"{path}.groups",
                f"{g} does not divide the block input width {args.in_ch}; use other groups or group_in: false")
    require(branch % g == 0, f"{path}.groups",
            f"{g} does not divide the {branch} channels the branch makes (out {args.out}"
            f"{f' - in {args.in_ch}' if concatenates(args) else ''}); use other groups or widths")


class ShuffleV1Unit(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        g, act, stride = args["groups"], args["act"], args.stride
        mid, branch = widths(args)
        self.groups = g
        self.reduce = ConvBNAct(args.in_ch, mid, 1, groups=g if args["group_in"] else 1, act=act)
        self.depthwise = ConvBNAct(mid, mid, args["kernel"], stride, groups=mid, act="identity")
        self.expand = ConvBNAct(mid, branch, 1, groups=g, act="identity")
        self.concat = concatenates(args)
        self.shortcut: nn.Module = nn.Identity()
        if stride > 1:
            self.shortcut = nn.AvgPool2d(3, stride, 1)
            if not self.concat:
                self.shortcut = nn.Sequential(self.shortcut, ConvBNAct(args.in_ch, args.out, 1, act="identity"))
        self.act = activation(act)

    def forward(self, x):
        y = channel_shuffle(self.reduce(x), self.groups)
        y = self.expand(self.depthwise(y))
        if self.concat:
            return self.act(torch.cat((self.shortcut(x), y), dim=1))
        return self.act(y + self.shortcut(x))


FAMILY = BlockFamily(
    name="shuffle_v1",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=ShuffleV1Unit,
    check=check,
    keeps_width=keeps_width,
)
