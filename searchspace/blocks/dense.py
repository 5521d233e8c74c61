"""DenseNet dense block (torchvision DenseNet-BC) with its transition as the downsampling.

``layers`` dense layers, each BN-act-1x1 conv to ``bn_size * growth`` -> BN-act-3x3 conv to
``growth`` channels, concatenated to its input: the block adds ``layers * growth`` channels to the
``out - layers * growth`` it starts from. Before the layers, a transition BN-act-1x1 conv maps the
input to that width and a 2x2 average pool (stride 2) downsamples; it is there at stride 2 or when
the input width differs (torchvision's transition between dense blocks). The output is not
normalised: a network ending in dense blocks wants ``head.norm`` (DenseNet's norm5). The depth
multiplier scales ``repeat`` (dense blocks, each with its transition), not ``layers``: with ``out``
fixed, more layers would leave less for the transition (or, with a derived growth, thin them).
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.layers import ACTIVATIONS, BNAct
from searchspace.params import MAX_CHANNELS, Param

PARAMS = (
    Param("layers", int, 4, "dense layers in the block", low=1, high=128,
          search=(2, 3)),
    Param("growth", int, None, "growth rate: channels each layer adds (follows the width multiplier); "
          "null: max(1, int(out * share / layers))", low=1, high=MAX_CHANNELS, nullable=True),
    Param("share", float, 0.5, "when growth is null: the share of out the layers make", low=0.05, high=0.95,
          search=(0.5, 0.75)),
    Param("bn_size", int, 4, "each layer's 1x1 conv width: bn_size * growth", low=1, high=8, search=(2, 4)),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)


def growth_rate(args: BlockArgs) -> int:
    """Channels each layer adds: explicit ``growth``, or ``max(1, int(out * share / layers))``."""
    if args["growth"] is not None:
        return args["growth"]
    return max(1, int(args.out * args["share"] / args["layers"]))


def start_width(args: BlockArgs) -> int:
    """Width the layers start from (the transition's output): ``out - layers * growth``."""
    return args.out - args["layers"] * growth_rate(args)


def has_transition(args: BlockArgs) -> bool:
    return args.stride > 1 or args.in_ch != start_width(args)


def check(args: BlockArgs, path: str) -> None:
    field = "growth" if args["growth"] is not None else "layers"
    require(start_width(args) >= 1, f"{path}.{field}",
            f"{args['layers']} layers of growth {growth_rate(args)} make {args['layers'] * growth_rate(args)} "
            f"channels, leaving none of out {args.out} to start from; use fewer layers, a smaller growth "
            f"or a larger out")


def pool_output_size(size: int, stride: int) -> int:
    """Spatial size after the block: AvgPool2d(2, 2) (floor) at stride 2."""
    return size // stride


class DenseLayer(nn.Module):
    """BN-act-1x1 conv -> BN-act-3x3 conv to ``growth``, concatenated to the input."""

    def __init__(self, in_ch: int, growth: int, bn_size: int, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            BNAct(in_ch, act),
            nn.Conv2d(in_ch, bn_size * growth, 1, bias=False),
            BNAct(bn_size * growth, act),
            nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x):
        return torch.cat([x, self.body(x)], dim=1)


class DenseBlock(nn.Sequential):
    def __init__(self, args: BlockArgs) -> None:
        act, growth, width = args["act"], growth_rate(args), start_width(args)
        parts: list[nn.Module] = []
        if has_transition(args):
            parts += [BNAct(args.in_ch, act), nn.Conv2d(args.in_ch, width, 1, bias=False)]
            if args.stride > 1:
                parts.append(nn.AvgPool2d(2, args.stride))
        for i in range(args["layers"]):
            parts.append(DenseLayer(width + i * growth, growth, args["bn_size"], act))
        super().__init__(*parts)


FAMILY = BlockFamily(
    name="dense",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=DenseBlock,
    check=check,
    channel_params=("growth",),
    output_size=pool_output_size,
)
