"""ResNeSt bottleneck with split attention (timm ResNestBottleneck + SplitAttn).

1x1 conv-BN-act to ``width`` -> split-attention 3x3 conv -> (avd: 3x3 average pool with the
block's stride, the conv then at stride 1) -> 1x1 conv-BN to ``out``, + shortcut, act.
``width = int(out / expansion * (base_width / 64)) * cardinality``. The split-attention conv is a
3x3 conv-BN-act to ``width * radix`` in ``cardinality * radix`` groups; the radix splits are summed,
pooled, passed through fc1 (1x1, bias, ``cardinality`` groups) - BN - act - fc2 and a softmax over
the radix (sigmoid at radix 1), and the splits are summed weighted by it. Attention width
``make_divisible(width * radix * 0.25, 8)``, at least 32. Shortcut: average-pool down by default.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.blocks.bottleneck import checked_group_width, group_width
from searchspace.blocks.shortcut import ResidualBlock, make_shortcut
from searchspace.layers import ACTIVATIONS, ConvBNAct, activation, make_divisible
from searchspace.params import Param

PARAMS = (
    Param("radix", int, 2, "splits per cardinal group (1: sigmoid attention)", low=1, high=4, search=(1, 2)),
    Param("cardinality", int, 1, "groups of the split-attention conv", low=1, high=64, search=(1, 2)),
    Param("base_width", int, 64, "channels per group per 64 bottleneck channels", low=1, high=256),
    Param("expansion", int, 4, "out / bottleneck channels", low=1, high=8, search=(2, 4)),
    Param("avd", bool, True, "stride by a 3x3 average pool instead of the 3x3 conv (when stride > 1)"),
    Param("avd_first", bool, False, "put the avd pool before the split-attention conv, not after"),
    Param("avg_down", bool, True, "ResNet-D shortcut: average pool then 1x1 conv", search=(False, True)),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)


def attention_width(width: int, radix: int) -> int:
    """Width of the attention MLP: ``make_divisible(width * radix * 0.25, 8)``, at least 32."""
    return make_divisible(width * radix * 0.25, 8, min_value=32)


class SplitAttention(nn.Module):
    """Split-attention 3x3 conv (timm SplitAttn with BN), ``width`` -> ``width`` channels."""

    def __init__(self, width: int, stride: int, cardinality: int, radix: int, act: str) -> None:
        super().__init__()
        self.radix, self.cardinality = radix, cardinality
        attn = attention_width(width, radix)
        self.conv = ConvBNAct(width, width * radix, 3, stride, groups=cardinality * radix, act=act)
        self.fc1 = nn.Conv2d(width, attn, 1, groups=cardinality)
        self.bn1 = nn.BatchNorm2d(attn)
        self.act1 = activation(act)
        self.fc2 = nn.Conv2d(attn, width * radix, 1, groups=cardinality)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        b, rc, h, w = x.shape
        if self.radix > 1:
            x = x.reshape(b, self.radix, rc // self.radix, h, w)
            gap = x.sum(dim=1)
        else:
            gap = x
        gap = gap.mean((2, 3), keepdim=True)
        attn = self.fc2(self.act1(self.bn1(self.fc1(gap))))
        if self.radix > 1:
            attn = attn.view(b, self.cardinality, self.radix, -1).transpose(1, 2)
            attn = torch.softmax(attn, dim=1).reshape(b, self.radix, rc // self.radix, 1, 1)
            return (x * attn).sum(dim=1)
        return x * torch.sigmoid(attn)


def check(args: BlockArgs, path: str) -> None:
    radix, cardinality = args["radix"], args["cardinality"]
    per_group = checked_group_width(args, path)
    require(per_group % radix == 0, f"{path}.radix",
            f"{radix} does not divide the {per_group} channels per group (out / expansion * "
            f"base_width / 64); allowed radix values here are divisors of {per_group}")
    attn = attention_width(per_group * cardinality, radix)
    require(attn % cardinality == 0, f"{path}.cardinality",
            f"{cardinality} does not divide the attention width {attn}; allowed cardinality values "
            f"here are divisors of {attn}")


def build(args: BlockArgs) -> nn.Module:
    act, stride = args["act"], args.stride
    width = group_width(args.out, args["expansion"], args["base_width"]) * args["cardinality"]
    pool: list[nn.Module] = []
    if args["avd"] and stride > 1:
        pool = [nn.AvgPool2d(3, stride, padding=1)]
        stride = 1
    split = SplitAttention(width, stride, args["cardinality"], args["radix"], act)
    middle = [*pool, split] if args["avd_first"] else [split, *pool]
    body = nn.Sequential(
        ConvBNAct(args.in_ch, width, 1, act=act),
        *middle,
        ConvBNAct(width, args.out, 1, act="identity"),
    )
    return ResidualBlock(body, make_shortcut(args.in_ch, args.out, args.stride, args["avg_down"]), act)


FAMILY = BlockFamily(
    name="split_attention",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=build,
    check=check,
)
