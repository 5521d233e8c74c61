"""Inverted residual / MBConv (MobileNetV2/V3, MnasNet, EfficientNet), incl. fused and DS forms.

1x1 expand (only when the expanded width differs from the input) -> depthwise kxk (stride) ->
optional squeeze-excitation -> linear 1x1 project; identity residual when stride 1 and in == out.
``fused``: the expand and depthwise convs become one kxk conv (EfficientNetV2 Fused-MBConv).
With ``expand: 1`` and not fused this is the depthwise-separable block; with ``project_act``
and ``skip: false`` too it is MobileNetV1's (timm's ``dsa``).
"""

from __future__ import annotations

from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily
from searchspace.layers import ACTIVATIONS, GATES, ConvBNAct, SqueezeExcite, make_divisible, se_channels
from searchspace.params import MAX_CHANNELS, Param

PARAMS = (
    Param("kernel", int, 3, "depthwise kernel size", choices=(3, 5, 7), search=(3, 5, 7)),
    Param("expand", float, 6.0, "expansion ratio: expanded width = make_divisible(in * expand, 8)",
          low=1.0, high=8.0, search=(3.0, 4.0, 6.0)),
    Param("mid", int, None, "explicit expanded width (overrides expand; follows the width multiplier)",
          low=1, high=MAX_CHANNELS, nullable=True),
    Param("se", float, 0.0, "squeeze-excitation ratio (0 = no SE)", low=0.0, high=1.0, search=(0.0, 0.25)),
    Param("se_from", str, "expanded", "SE width measured from the block input (EfficientNet) or the "
          "expanded width (MobileNetV3)", choices=("input", "expanded")),
    Param("se_divisor", int, 8, "SE width rounded to a multiple of this (1 = floor, at least 1)",
          choices=(1, 4, 8)),
    Param("se_act", str, "relu", "activation inside the SE module", choices=ACTIVATIONS),
    Param("gate", str, "sigmoid", "SE gate", choices=GATES),
    Param("act", str, "relu", "activation after expand and depthwise convs", choices=ACTIVATIONS,
          search=("relu", "hswish", "swish")),
    Param("fused", bool, False, "fuse expand + depthwise into one kxk conv (Fused-MBConv)"),
    Param("skip", bool, True, "identity residual when stride 1 and in == out (false: never, timm's noskip)",
          omit_default=True),
    Param("project_act", bool, False, "act after the 1x1 projection too (MobileNetV1)", omit_default=True),
)


def expanded_width(args: BlockArgs, divisor: int = 8) -> int:
    """The expanded (hidden) width of one block instance: explicit ``mid``, or in * expand rounded."""
    if args["mid"] is not None:
        return args["mid"]
    if args["expand"] == 1.0:
        return args.in_ch
    return make_divisible(args.in_ch * args["expand"], divisor)


class MBConv(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        mid, k, act = expanded_width(args), args["kernel"], args["act"]
        single_conv = args["fused"] and mid == args.in_ch  # fused with expand 1: one kxk conv to out
        hidden = args.out if single_conv else mid
        layers: list[nn.Module] = []
        if args["fused"]:
            layers.append(ConvBNAct(args.in_ch, hidden, k, args.stride, act=act))
        else:
            if mid != args.in_ch:
                layers.append(ConvBNAct(args.in_ch, mid, 1, act=act))
            layers.append(ConvBNAct(mid, mid, k, args.stride, groups=mid, act=act))
        if args["se"] > 0:
            base = args.in_ch if args["se_from"] == "input" else hidden
            squeeze = se_channels(base, args["se"], args["se_divisor"])
            layers.append(SqueezeExcite(hidden, squeeze, act=args["se_act"], gate=args["gate"]))
        if not single_conv:
            layers.append(ConvBNAct(hidden, args.out, 1, act=act if args["project_act"] else "identity"))
        self.body = nn.Sequential(*layers)
        self.residual = args.stride == 1 and args.in_ch == args.out and args["skip"]

    def forward(self, x):
        out = self.body(x)
        return out + x if self.residual else out


FAMILY = BlockFamily(
    name="mbconv",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=MBConv,
    channel_params=("mid",),
)
