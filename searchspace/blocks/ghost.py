"""Ghost bottleneck (GhostNet, as timm GhostBottleneck with the original ghost module).

ghost module (with act) to the expanded width -> depthwise kxk conv-BN (only at stride 2) ->
optional squeeze-excitation (ReLU, hard-sigmoid gate) -> ghost module (no act) to ``out``; plus a
shortcut: identity when stride 1 and in == out, else depthwise kxk (stride)-BN -> 1x1 conv-BN.
A ghost module is a 1x1 conv-BN-act to ``ceil(out / ratio)`` channels followed by a cheap 3x3
depthwise conv-BN-act making the rest; the two are concatenated and cut to ``out``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily
from searchspace.blocks.mbconv import expanded_width as mbconv_expanded_width
from searchspace.layers import ACTIVATIONS, ConvBNAct, SqueezeExcite, se_channels
from searchspace.params import MAX_CHANNELS, Param

PARAMS = (
    Param("kernel", int, 3, "depthwise kernel size (stride-2 conv and shortcut)", choices=(3, 5, 7),
          search=(3, 5)),
    Param("expand", float, 3.0, "expansion ratio: expanded width = make_divisible(in * expand, 4)",
          low=1.0, high=8.0, search=(3.0, 4.0, 6.0)),
    Param("mid", int, None, "explicit expanded width (overrides expand; follows the width multiplier)",
          low=1, high=MAX_CHANNELS, nullable=True),
    Param("se", float, 0.0, "squeeze-excitation ratio of the expanded width (0 = no SE)", low=0.0,
          high=1.0, search=(0.0, 0.25)),
    Param("ratio", int, 2, "ghost ratio: 1 / ratio of each ghost module's output comes from its 1x1 conv",
          choices=(2, 3, 4)),
    Param("act", str, "relu", "activation of the first ghost module", choices=ACTIVATIONS,
          search=("relu", "hswish")),
)


def expanded_width(args: BlockArgs) -> int:
    """The expanded (hidden) width: as mbconv's, rounded to a multiple of 4 as timm's GhostNet."""
    return mbconv_expanded_width(args, divisor=4)


class GhostModule(nn.Module):
    """1x1 conv-BN-act to ceil(out / ratio), cheap 3x3 depthwise conv-BN-act, concat, cut to out."""

    def __init__(self, in_ch: int, out_ch: int, ratio: int, act: str) -> None:
        super().__init__()
        init = math.ceil(out_ch / ratio)
        self.out_ch = out_ch
        self.primary = ConvBNAct(in_ch, init, 1, act=act)
        self.cheap = ConvBNAct(init, init * (ratio - 1), 3, groups=init, act=act)

    def forward(self, x):
        x1 = self.primary(x)
        return torch.cat((x1, self.cheap(x1)), dim=1)[:, : self.out_ch]


class GhostBottleneck(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        mid, k, stride = expanded_width(args), args["kernel"], args.stride
        layers: list[nn.Module] = [GhostModule(args.in_ch, mid, args["ratio"], args["act"])]
        if stride > 1:
            layers.append(ConvBNAct(mid, mid, k, stride, groups=mid, act="identity"))
        if args["se"] > 0:
            layers.append(SqueezeExcite(mid, se_channels(mid, args["se"], 4), act="relu", gate="hsigmoid"))
        layers.append(GhostModule(mid, args.out, args["ratio"], "identity"))
        self.body = nn.Sequential(*layers)
        if stride == 1 and args.in_ch == args.out:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvBNAct(args.in_ch, args.in_ch, k, stride, groups=args.in_ch, act="identity"),
                ConvBNAct(args.in_ch, args.out, 1, act="identity"),
            )

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


FAMILY = BlockFamily(
    name="ghost",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=GhostBottleneck,
    channel_params=("mid",),
)
