"""Residual plumbing shared by the ResNet-style families: shortcut branch, output SE, add + act."""

from __future__ import annotations

from torch import nn

from searchspace.layers import SqueezeExcite, activation, make_divisible
from searchspace.params import Param


def make_shortcut(in_ch: int, out: int, stride: int, avg_down: bool) -> nn.Module:
    """Identity when stride 1 and in == out; else 1x1 conv (stride) + BN.

    ``avg_down`` (ResNet-D): AvgPool2d(2, stride, ceil_mode, count_include_pad=False) (none at
    stride 1) followed by a stride-1 1x1 conv + BN.
    """
    if stride == 1 and in_ch == out:
        return nn.Identity()
    if not avg_down:
        return nn.Sequential(nn.Conv2d(in_ch, out, 1, stride, bias=False), nn.BatchNorm2d(out))
    pool: nn.Module = nn.Identity()
    if stride > 1:
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
    return nn.Sequential(pool, nn.Conv2d(in_ch, out, 1, bias=False), nn.BatchNorm2d(out))


SE_ROUND = Param("se_round", str, "make_divisible", "rounding of the SE width to a multiple of 8: "
                 "make_divisible (up 8 more when it loses over 10%) or timm (nearest, at least 8: timm's "
                 "SEModule, SE-ResNet)", choices=("make_divisible", "timm"), omit_default=True)


def se_layer(out: int, ratio: float, rounding: str = "make_divisible") -> list[nn.Module]:
    """SE on a block output: squeeze ``out * ratio`` rounded to 8 (see SE_ROUND), ReLU, sigmoid (none at 0)."""
    if ratio <= 0:
        return []
    squeeze = make_divisible(out * ratio, 8, round_limit=0.0 if rounding == "timm" else 0.9)
    return [SqueezeExcite(out, squeeze, act="relu", gate="sigmoid")]


class ResidualBlock(nn.Module):
    """``act(body(x) + shortcut(x))``: the frame of the basic, bottleneck and split-attention blocks."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, act: str) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.act = activation(act)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))
