"""Xception block (timm legacy_xception Block): ReLU - separable 3x3 - BN, repeated, + skip.

``reps`` times act -> separable 3x3 conv (depthwise 3x3 + pointwise 1x1, no norm between) -> BN;
the first separable conv changes the width to ``out`` (``grow_first``) or the last one does.
``first_act: false`` drops the first act (Xception's first block follows the stem's ReLU). Stride 2
ends with a 3x3 stride-2 max pool (padding 1). Skip: identity when stride 1 and in == out, else
1x1 conv (stride) + BN; ``residual: false`` drops it. ``preact: false`` orders each rep separable
conv -> BN -> act instead (the exit flow's last two separable convs, conv3 and conv4).
"""

from __future__ import annotations

from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily
from searchspace.layers import ACTIVATIONS, activation
from searchspace.params import Param

PARAMS = (
    Param("reps", int, 2, "separable convs in the block", low=1, high=4, search=(2, 3)),
    Param("grow_first", bool, True, "the first separable conv changes the width (false: the last)"),
    Param("first_act", bool, True, "an act before the first separable conv (with preact)"),
    Param("residual", bool, True, "add the skip branch (false: a plain stack of separable convs)"),
    Param("preact", bool, True, "act before each separable conv (false: after each BN)"),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)


class SeparableConv(nn.Sequential):
    """timm's legacy SeparableConv2d: depthwise 3x3 + pointwise 1x1, no bias, no norm between."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(nn.Conv2d(in_ch, in_ch, 3, 1, 1, groups=in_ch, bias=False),
                         nn.Conv2d(in_ch, out_ch, 1, bias=False))


def rep_widths(args: BlockArgs) -> list[tuple[int, int]]:
    """(in, out) of each separable conv: the width changes at the first (grow_first) or the last."""
    in_ch, out, reps = args.in_ch, args.out, args["reps"]
    if args["grow_first"]:
        return [(in_ch if i == 0 else out, out) for i in range(reps)]
    return [(in_ch, in_ch if i < reps - 1 else out) for i in range(reps)]


def _act(name: str) -> nn.Module:
    act = activation(name)
    if hasattr(act, "inplace"):
        act.inplace = False  # the first act sees the block input, which the skip still needs
    return act


class XceptionBlock(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        act, preact = args["act"], args["preact"]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(rep_widths(args)):
            if preact and (i > 0 or args["first_act"]):
                layers.append(_act(act) if i == 0 else activation(act))
            layers += [SeparableConv(c_in, c_out), nn.BatchNorm2d(c_out)]
            if not preact:
                layers.append(activation(act))
        if args.stride > 1:
            layers.append(nn.MaxPool2d(3, args.stride, 1))
        self.rep = nn.Sequential(*layers)
        self.skip: nn.Module | None = None
        if args["residual"]:
            self.skip = nn.Identity()
            if args.stride != 1 or args.in_ch != args.out:
                self.skip = nn.Sequential(nn.Conv2d(args.in_ch, args.out, 1, args.stride, bias=False),
                                          nn.BatchNorm2d(args.out))

    def forward(self, x):
        out = self.rep(x)
        return out if self.skip is None else out + self.skip(x)


FAMILY = BlockFamily(
    name="xception",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=XceptionBlock,
)
