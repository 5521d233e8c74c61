"""ResNet bottleneck with instance + batch normalisation (IBN-Net, Pan et al. 2018; as XingangPan/IBN-Net).

As the ``bottleneck`` family (1x1 conv -> 3x3 conv (stride) -> 1x1 conv, + shortcut, act), with
``ibn: a``: the first norm is split, ``int(width * ratio)`` channels through an affine InstanceNorm and
the rest through a BatchNorm (IBN-a); ``ibn: b``: an affine InstanceNorm on the block output after the
last BN, before the add (IBN-b); ``ibn: none`` is the plain bottleneck. Instance norms have as many
parameters as the batch norms they replace, so ResNet-50-IBN-a counts exactly as ResNet-50.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.blocks.bottleneck import checked_group_width, group_width
from searchspace.blocks.shortcut import ResidualBlock, make_shortcut
from searchspace.layers import ACTIVATIONS, ConvBNAct
from searchspace.params import Param

PARAMS = (
    Param("ibn", str, "a", "where the instance norm goes: a (half of the first norm), b (on the block output, "
          "before the add) or none", choices=("a", "b", "none"), search=("a", "b")),
    Param("ratio", float, 0.5, "IBN-a: share of the first norm's channels that are instance-normalised",
          low=0.05, high=0.95),
    Param("groups", int, 1, "groups of the 3x3 conv (ResNeXt cardinality)", low=1, high=64, search=(1, 2)),
    Param("base_width", int, 64, "channels per group per 64 bottleneck channels", low=1, high=256),
    Param("expansion", int, 4, "out / bottleneck channels", low=1, high=8, search=(2, 4)),
    Param("avg_down", bool, False, "ResNet-D shortcut: average pool then 1x1 conv"),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)


class IBN(nn.Module):
    """IBN-a norm: the first ``half`` channels through an affine InstanceNorm, the rest through a BatchNorm."""

    def __init__(self, channels: int, half: int) -> None:
        super().__init__()
        self.half = half
        self.IN = nn.InstanceNorm2d(half, affine=True)
        self.BN = nn.BatchNorm2d(channels - half)

    def forward(self, x):
        first, rest = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.IN(first.contiguous()), self.BN(rest.contiguous())], dim=1)


def instance_channels(width: int, ratio: float) -> int:
    """Channels of the IBN-a instance norm: ``int(width * ratio)`` (the official rule)."""
    return int(width * ratio)


def check(args: BlockArgs, path: str) -> None:
    width = checked_group_width(args, path) * args["groups"]
    if args["ibn"] == "a":
        half = instance_channels(width, args["ratio"])
        require(0 < half < width, f"{path}.ratio",
                f"{args['ratio']:g} splits the {width}-channel first norm into {half} instance-normalised "
                f"and {width - half} batch-normalised channels; both need at least one, so use a ratio "
                f"nearer 0.5 or a larger out")


def build(args: BlockArgs) -> nn.Module:
    act, groups, ibn = args["act"], args["groups"], args["ibn"]
    width = group_width(args.out, args["expansion"], args["base_width"]) * groups
    first = ConvBNAct(args.in_ch, width, 1, act=act)
    if ibn == "a":
        first[1] = IBN(width, instance_channels(width, args["ratio"]))
    last: list[nn.Module] = [nn.InstanceNorm2d(args.out, affine=True)] if ibn == "b" else []
    body = nn.Sequential(
        first,
        ConvBNAct(width, width, 3, args.stride, groups=groups, act=act),
        ConvBNAct(width, args.out, 1, act="identity"),
        *last,
    )
    return ResidualBlock(body, make_shortcut(args.in_ch, args.out, args.stride, args["avg_down"]), act)


FAMILY = BlockFamily(
    name="ibn",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=build,
    check=check,
)
