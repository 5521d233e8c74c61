"""Residual plumbing shared by the ResNet-style families: shortcut branch, output SE, add + act."""

from __future__ import annotations

from torch import nn

from searchspace.layers import SqueezeExcite, activation, make_divisible


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


def se_layer(out: int, ratio: float) -> list[nn.Module]:
    """SE on a block output: squeeze make_divisible(out * ratio, 8), ReLU, sigmoid (none at 0)."""
    if ratio <= 0:
        return []
    return [SqueezeExcite(out, make_divisible(out * ratio, 8), act="relu", gate="sigmoid")]


class ResidualBlock(nn.Module):
    """``act(body(x) + shortcut(x))``: the frame of the basic, bottleneck and split-attention blocks."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, act: str) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.act = activation(act)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))
