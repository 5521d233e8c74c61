"""One-shot aggregation block (VoVNet, as timm OsaBlock), with the stage's max pool at stride 2.

Stride 2 first max-pools the input (3x3, stride 2, ceil mode). Then ``layers`` 3x3 conv-BN-act to
``mid`` channels, each feeding the next (``depthwise``: depthwise 3x3 + 1x1 conv-BN-act, after a
1x1 conv-BN-act reduction to ``mid`` when in != mid); the block input and every layer output are
concatenated and a 1x1 conv-BN-act maps them to ``out``. Optional eSE (one 1x1 conv with bias,
hard-sigmoid gate) and identity residual (stride 1 and in == out only).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.layers import ACTIVATIONS, ConvBNAct, SeparableConvBNAct
from searchspace.params import MAX_CHANNELS, Param

PARAMS = (
    Param("mid", int, 128, "width of the 3x3 layers (follows the width multiplier)", low=1, high=MAX_CHANNELS),
    Param("layers", int, 5, "number of 3x3 layers whose outputs are aggregated", low=1, high=10,
          search=(3, 4, 5)),
    Param("residual", bool, False, "identity residual (needs stride 1 and in == out)"),
    Param("depthwise", bool, False, "depthwise-separable 3x3 layers (VoVNet-dw)"),
    Param("ese", bool, False, "effective squeeze-excitation after the aggregation conv",
          search=(False, True)),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS),
)


def pool_output_size(size: int, stride: int) -> int:
    """Spatial size after the block: MaxPool2d(3, stride, ceil_mode=True) when stride > 1."""
    if stride == 1:
        return size
    if size < 2:
        raise ValueError(f"a {size}x{size} map is too small for the 3x3 stride-{stride} max pool")
    out = math.ceil((size - 3) / stride) + 1
    if (out - 1) * stride >= size:  # ceil mode: the last window must start inside the input
        out -= 1
    return out


def check(args: BlockArgs, path: str) -> None:
    if args["residual"]:
        require(args.stride == 1 and args.in_ch == args.out, f"{path}.residual",
                f"true needs stride 1 and out == in; this block has stride {args.stride}, "
                f"in {args.in_ch}, out {args.out}; use residual: false")


class EffectiveSE(nn.Module):
    """eSE: global average pool, one 1x1 conv with bias, hard-sigmoid gate, scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc(x.mean((2, 3), keepdim=True)))


class OsaBlock(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        mid, act, in_ch = args["mid"], args["act"], args.in_ch
        self.pool = nn.MaxPool2d(3, args.stride, ceil_mode=True) if args.stride > 1 else nn.Identity()
        reduce = args["depthwise"] and in_ch != mid
        self.reduction = ConvBNAct(in_ch, mid, 1, act=act) if reduce else nn.Identity()
        layers: list[nn.Module] = []
        width = mid if reduce else in_ch
        for _ in range(args["layers"]):
            if args["depthwise"]:
                layers.append(SeparableConvBNAct(width, mid, act=act))
            else:
                layers.append(ConvBNAct(width, mid, 3, act=act))
            width = mid
        self.layers = nn.ModuleList(layers)
        self.concat = ConvBNAct(in_ch + args["layers"] * mid, args.out, 1, act=act)
        self.ese = EffectiveSE(args.out) if args["ese"] else nn.Identity()
        self.residual = args["residual"]

    def forward(self, x):
        x = self.pool(x)
        outputs = [x]
        y = self.reduction(x)
        for layer in self.layers:
            y = layer(y)
            outputs.append(y)
        y = self.ese(self.concat(torch.cat(outputs, dim=1)))
        return y + x if self.residual else y


FAMILY = BlockFamily(
    name="osa",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=OsaBlock,
    check=check,
    channel_params=("mid",),
    output_size=pool_output_size,
)
