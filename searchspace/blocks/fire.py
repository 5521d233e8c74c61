"""SqueezeNet Fire module: squeeze 1x1 -> expand 1x1 + expand 3x3, concatenated.

1x1 conv-act to ``squeeze`` channels, then a 1x1 conv-act and a 3x3 conv-act side by side whose
outputs are concatenated to ``out`` channels (torchvision Fire). squeeze = max(1, int(out *
squeeze)); the 3x3 conv makes int(out * expand3x3) channels, the 1x1 the rest (SqueezeNet: 1/8
and 1/2). Convs have a bias and no BatchNorm, as SqueezeNet; ``norm: true`` gives conv (no bias)
- BN - act. Stride 2 first max-pools the input (3x3, stride 2, ceil mode) as SqueezeNet between
its stages.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.blocks.osa import pool_output_size
from searchspace.layers import ACTIVATIONS, ConvBNAct
from searchspace.params import Param

PARAMS = (
    Param("squeeze", float, 0.125, "squeeze width = max(1, int(out * squeeze))", low=0.01, high=1.0,
          search=(0.125, 0.25)),
    Param("expand3x3", float, 0.5, "share of out made by the 3x3 expand conv: int(out * expand3x3)",
          low=0.01, high=0.99, search=(0.5, 0.75)),
    Param("norm", bool, False, "BatchNorm after each conv (and no conv bias)", search=(False, True)),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)


def widths(args: BlockArgs) -> tuple[int, int, int]:
    """(squeeze, expand 1x1, expand 3x3) channels of one Fire module."""
    e3 = int(args.out * args["expand3x3"])
    return max(1, int(args.out * args["squeeze"])), args.out - e3, e3


def check(args: BlockArgs, path: str) -> None:
    _, e1, e3 = widths(args)
    require(e1 >= 1 and e3 >= 1, f"{path}.expand3x3",
            f"{args['expand3x3']:g} of out {args.out} leaves the 1x1 expand {e1} and the 3x3 expand {e3} "
            "channels; both need at least 1 (use a larger out or a share nearer 0.5)")


class Fire(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        squeeze, e1, e3 = widths(args)
        style = {"act": args["act"], "norm": args["norm"], "bias": not args["norm"]}
        self.pool = nn.MaxPool2d(3, args.stride, ceil_mode=True) if args.stride > 1 else nn.Identity()
        self.squeeze = ConvBNAct(args.in_ch, squeeze, 1, **style)
        self.expand1x1 = ConvBNAct(squeeze, e1, 1, **style)
        self.expand3x3 = ConvBNAct(squeeze, e3, 3, **style)

    def forward(self, x):
        x = self.squeeze(self.pool(x))
        return torch.cat((self.expand1x1(x), self.expand3x3(x)), dim=1)


FAMILY = BlockFamily(
    name="fire",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=Fire,
    check=check,
    output_size=pool_output_size,
)
