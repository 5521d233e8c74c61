"""Octave-convolution ResNet bottleneck (OctResNet; Chen et al. 2019, as facebookresearch/OctConv).

The bottleneck of the ``bottleneck`` family (1x1 -> 3x3 (stride, groups) -> 1x1, + shortcut, act) with
every conv an octave conv: its channels split into a high-frequency part at the map's resolution and a
low-frequency part, ``int(alpha * channels)`` of them, at half resolution. An octave conv has four paths,
high->high, high->low (on the 2x2-average-pooled map), low->high (upsampled x2, nearest) and low->low,
summed per output part; each part has its own BatchNorm and act. As the authors' code, a stride-2 octave
conv average-pools its input (2x2) and convolves at stride 1, and the projection shortcut (stride 2 or
another split) is a 1x1 octave conv + BN. ``alpha_in`` is the split of the block's input: 0 for the
first block after ordinary layers (the network's first octave conv, alpha_in 0 -> alpha), ``alpha``
(null) between octave blocks, and ``alpha: 0`` after ``alpha_in > 0`` merges back (OctResNet's last
stage: its first block merges, the rest are plain). A block takes and gives one tensor: the low part
travels between blocks as its last channels, upsampled to the full map (nearest), and the next block
takes them back with a 2x2 average pool (exact for an octave output; a low-pass split of any other
input). Parameters: those of the plain bottleneck; MACs: those of the authors' OctResNet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.blocks.bottleneck import checked_group_width, group_width
from searchspace.layers import ACTIVATIONS, activation
from searchspace.params import Param

ALPHAS = (0.0, 0.125, 0.25, 0.5, 0.75)

PARAMS = (
    Param("alpha", float, 0.25, "share of low-frequency (half-resolution) channels inside the block and in "
          "its output: int(alpha * channels)", choices=ALPHAS, search=(0.125, 0.25, 0.5)),
    Param("alpha_in", float, None, "low-frequency share of the block's input: 0 for the first octave block "
          "after ordinary layers, null = alpha (the previous block is an octave block with this alpha)",
          choices=ALPHAS, nullable=True, omit_default=True),
    Param("groups", int, 1, "groups of the 3x3 octave conv (ResNeXt cardinality)", low=1, high=64),
    Param("base_width", int, 64, "channels per group per 64 bottleneck channels", low=1, high=256),
    Param("expansion", int, 4, "out / bottleneck channels", low=1, high=8, search=(2, 4)),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)

Parts = tuple[torch.Tensor, torch.Tensor | None]


def split(channels: int, alpha: float) -> tuple[int, int]:
    """(high, low) channels: ``low = int(alpha * channels)`` (the authors' rule), high the rest."""
    low = int(alpha * channels)
    return channels - low, low


def pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pool, stride 2, ceil mode (an odd side keeps its last row and column)."""
    return F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)


def upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest x2 upsampling cropped to ``like``'s map (the inverse of :func:`pool`'s sizes)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")[:, :, : like.shape[2], : like.shape[3]]


class OctConv(nn.Module):
    """One octave conv: (high, low) -> (high, low); a path is absent where either of its parts has no channels."""

    def __init__(self, ins: tuple[int, int], outs: tuple[int, int], kernel: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__()
        (in_h, in_l), (out_h, out_l) = ins, outs
        self.stride = stride

        def conv(i: int, o: int) -> nn.Module | None:
            return nn.Conv2d(i, o, kernel, 1, kernel // 2, groups=groups, bias=False) if i and o else None

        self.h2h, self.h2l = conv(in_h, out_h), conv(in_h, out_l)
        self.l2h, self.l2l = conv(in_l, out_h), conv(in_l, out_l)

    def forward(self, x_h: torch.Tensor, x_l: torch.Tensor | None) -> Parts:
        if self.stride > 1:
            x_h = pool(x_h)
        y_h = self.h2h(x_h)
        y_l = self.h2l(pool(x_h)) if self.h2l is not None else None
        if self.l2h is not None and x_l is not None:
            from_low = self.l2h(x_l)
            y_h = y_h + (from_low if self.stride > 1 else upsample(from_low, y_h))
        if self.l2l is not None and x_l is not None:
            from_low = self.l2l(pool(x_l) if self.stride > 1 else x_l)
            y_l = from_low if y_l is None else y_l + from_low
        return y_h, y_l


class OctConvBN(nn.Module):
    """Octave conv, a BatchNorm per part, then ``act`` on each part."""

    def __init__(self, ins: tuple[int, int], outs: tuple[int, int], kernel: int, stride: int = 1,
                 groups: int = 1, act: str = "relu") -> None:
        super().__init__()
        self.conv = OctConv(ins, outs, kernel, stride, groups)
        self.bn_h = nn.BatchNorm2d(outs[0])
        self.bn_l = nn.BatchNorm2d(outs[1]) if outs[1] else None
        self.act = activation(act)

    def forward(self, x_h: torch.Tensor, x_l: torch.Tensor | None) -> Parts:
        y_h, y_l = self.conv(x_h, x_l)
        y_h = self.act(self.bn_h(y_h))
        if self.bn_l is not None and y_l is not None:
            y_l = self.act(self.bn_l(y_l))
        return y_h, y_l


class OctaveBottleneck(nn.Module):
    """The octave bottleneck on one tensor: unpack the input's parts, run the block, pack its output."""

    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        act, groups, alpha = args["act"], args["groups"], args["alpha"]
        ins = split(args.in_ch, alpha if args["alpha_in"] is None else args["alpha_in"])
        mid = split(group_width(args.out, args["expansion"], args["base_width"]) * groups, alpha)
        outs = split(args.out, alpha)
        self.in_low = ins[1]
        self.conv1 = OctConvBN(ins, mid, 1, act=act)
        self.conv2 = OctConvBN(mid, mid, 3, args.stride, groups, act)
        self.conv3 = OctConvBN(mid, outs, 1, act="identity")
        same = args.stride == 1 and ins == outs
        self.shortcut = None if same else OctConvBN(ins, outs, 1, args.stride, act="identity")
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_h, x_l = x, None
        if self.in_low:
            x_h, x_l = x[:, : x.shape[1] - self.in_low], pool(x[:, x.shape[1] - self.in_low:])
        y_h, y_l = self.conv3(*self.conv2(*self.conv1(x_h, x_l)))
        s_h, s_l = (x_h, x_l) if self.shortcut is None else self.shortcut(x_h, x_l)
        y_h = self.act(y_h + s_h)
        if y_l is None:
            return y_h
        y_l = self.act(y_l if s_l is None else y_l + s_l)
        return torch.cat([y_h, upsample(y_l, y_h)], dim=1)


def _check_groups(channels: int, alpha: float, groups: int, path: str, what: str) -> None:
    high, low = split(channels, alpha)
    require(high % groups == 0 and low % groups == 0, f"{path}.groups",
            f"{groups} does not divide the {what} {high} high- and {low} low-frequency channels; use groups "
            f"that divide both, or another alpha")


def check(args: BlockArgs, path: str) -> None:
    width = checked_group_width(args, path) * args["groups"]
    if args["groups"] > 1:
        _check_groups(width, args["alpha"], args["groups"], path, f"{width}-channel bottleneck's")


def build(args: BlockArgs) -> nn.Module:
    return OctaveBottleneck(args)


FAMILY = BlockFamily(
    name="octave",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=build,
    check=check,
)
