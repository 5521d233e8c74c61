"""ESPNetv2's EESP unit (Mehta et al. 2019; as sacmehta/ESPNetv2): grouped reduce, dilated pyramid, grouped expand.

``unit: eesp``: a 1x1 conv with ``K`` groups reduces the input to ``n = out / K`` channels (BN, PReLU;
``gcd(K, n)`` groups where ``K`` does not divide ``n``, widths the authors' code refuses);
``K`` depthwise 3x3 convs on it, dilated by the paper's rule (branch ``i`` covers a ``3 + 2i`` receptive
field, or 3 once that passes ``r_lim``; sorted ascending, dilation ``(field - 1) / 2``); hierarchical
feature fusion adds each branch's output to the next; the branches are concatenated, BN + PReLU, and a
1x1 conv with ``K`` groups + BN expands them; the input is added when stride 1 and in == out; PReLU.
At stride 2 with out > in it is ESPNetv2's down-sampler: a 3x3 stride-2 average pool of the input
(padding 1) concatenated with a stride-2 EESP (no residual, no act of its own) to ``out - in``
channels, then PReLU; at stride 2 with out <= in a stride-2 EESP alone (the authors' ``down_method:
esp``). ``unit: expand`` is ESPNetv2's last layers: a depthwise 3x3 conv (stride) + BN + PReLU, then a
1x1 conv with ``K`` groups to ``out`` + BN + PReLU. Left out: the down-sampler's input reinforcement
(the image, average-pooled to the map, through a 3x3 and a 1x1 conv-BN, added to its output), which
needs the network input inside a block.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.params import Param

PARAMS = (
    Param("K", int, 4, "parallel dilated branches; the groups of both 1x1 convs (divides the widths)",
          low=1, high=8, search=(2, 4)),
    Param("r_lim", int, 7, "receptive-field limit of the branches (ESPNetv2: 13, 11, 9, 7, 5 from the first "
          "down-sampler on)", choices=(3, 5, 7, 9, 11, 13, 15, 17), search=(5, 7, 9)),
    Param("unit", str, "eesp", "eesp (the EESP unit; the down-sampler at stride 2 when out > in) or expand "
          "(ESPNetv2's depthwise 3x3 + grouped 1x1 before the head)", choices=("eesp", "expand")),
)


def dilations(branches: int, r_lim: int) -> list[int]:
    """Dilation per branch: fields ``3 + 2i``, 3 once past ``r_lim``, sorted; dilation ``(field - 1) / 2``."""
    fields = sorted(3 + 2 * i if 3 + 2 * i <= r_lim else 3 for i in range(branches))
    return [(field - 1) // 2 for field in fields]


def conv_bn(in_ch: int, out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
            prelu: bool = True) -> nn.Sequential:
    """Conv (no bias, same padding) + BN, + PReLU (a slope per channel) unless ``prelu`` is False."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(out)]
    return nn.Sequential(*layers, nn.PReLU(out)) if prelu else nn.Sequential(*layers)


class EESP(nn.Module):
    """Reduce, ``K`` dilated depthwise branches with hierarchical fusion, concat, BN-PReLU, grouped expand."""

    def __init__(self, in_ch: int, out: int, stride: int, branches: int, r_lim: int, final_act: bool = True):
        super().__init__()
        n = out // branches
        self.reduce = conv_bn(in_ch, n, groups=math.gcd(branches, n))
        self.branches = nn.ModuleList(nn.Conv2d(n, n, 3, stride, d, dilation=d, groups=n, bias=False)
                                      for d in dilations(branches, r_lim))
        self.merge = nn.Sequential(nn.BatchNorm2d(out), nn.PReLU(out))
        self.expand = conv_bn(out, out, groups=branches, prelu=False)
        self.residual = stride == 1 and in_ch == out
        self.act = nn.PReLU(out) if final_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        outs: list[torch.Tensor] = []
        for branch in self.branches:
            y = branch(reduced)
            outs.append(y + outs[-1] if outs else y)
        y = self.expand(self.merge(torch.cat(outs, dim=1)))
        return self.act(y + x if self.residual else y)


class DownSampler(nn.Module):
    """ESPNetv2's stride-2 unit: ``PReLU(cat(avgpool3x3(x), EESP_stride2(x)))``."""

    def __init__(self, in_ch: int, out: int, branches: int, r_lim: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, 2, 1)
        self.eesp = EESP(in_ch, out - in_ch, 2, branches, r_lim, final_act=False)
        self.act = nn.PReLU(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(torch.cat([self.pool(x), self.eesp(x)], dim=1))


def down_samples(args: BlockArgs) -> bool:
    """True where the block is the down-sampler (an EESP unit at stride 2 that widens its input)."""
    return args["unit"] == "eesp" and args.stride > 1 and args.out > args.in_ch


def check(args: BlockArgs, path: str) -> None:
    k = args["K"]
    grown = args.out - args.in_ch
    widths = {"input": args.in_ch, "out": args.out}
    if down_samples(args):
        widths = {"input": args.in_ch, "strided branch (out - input)": grown}
    for what, width in widths.items():
        require(width % k == 0, f"{path}.K",
                f"{k} does not divide the {width}-channel {what}; use a K that divides the block's input and "
                f"output widths (at stride 2 when out > input: the input and out - input)")


def build(args: BlockArgs) -> nn.Module:
    k, r_lim = args["K"], args["r_lim"]
    if args["unit"] == "expand":
        return nn.Sequential(conv_bn(args.in_ch, args.in_ch, 3, args.stride, groups=args.in_ch),
                             conv_bn(args.in_ch, args.out, groups=k))
    if down_samples(args):
        return DownSampler(args.in_ch, args.out, k, r_lim)
    return EESP(args.in_ch, args.out, args.stride, k, r_lim)


FAMILY = BlockFamily(
    name="eesp",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=build,
    check=check,
)
