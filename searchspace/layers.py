"""Small building blocks shared by the block families: rounding, activations, conv-BN-act, SE."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = ("relu", "relu6", "hswish", "swish", "leaky_relu", "identity")
GATES = ("sigmoid", "hsigmoid")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to a multiple of ``divisor`` (never down by more than 10%).

    The rule of torchvision and timm: ``new = max(d, int(v + d/2) // d * d)``; if ``new < 0.9 v``
    then ``new += d``. ``round_limit`` replaces the 0.9 (timm's SE modules use 0: plain nearest).
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < round_limit * value:
        new += divisor
    return int(new)


def activation(name: str) -> nn.Module:
    """An activation module by its genotype name."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    if name == "swish":
        return nn.SiLU(inplace=True)
    if name == "leaky_relu":  # timm's leaky_relu (CSPNet, Darknet): torch's default slope 0.01
        return nn.LeakyReLU(inplace=True)
    if name == "identity":
        return nn.Identity()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "hsigmoid":
        return nn.Hardsigmoid(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    """Conv2d + BatchNorm + activation; by default no bias and 'same' padding for odd kernels.

    ``norm=False`` puts an Identity where the BatchNorm goes (SqueezeNet); ``padding`` overrides
    ``(kernel - 1) // 2`` (0 for 'valid').
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str = "relu",
        bias: bool = False,
        norm: bool = True,
        padding: int | None = None,
    ) -> None:
        pad = (kernel - 1) // 2 if padding is None else padding
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, pad, groups=groups, bias=bias),
            nn.BatchNorm2d(out_ch) if norm else nn.Identity(),
            activation(act),
        )


class BNAct(nn.Sequential):
    """BatchNorm + activation: the pre-activation of DenseNet and ResNetV2 layers (timm BatchNormAct2d)."""

    def __init__(self, channels: int, act: str = "relu") -> None:
        super().__init__(nn.BatchNorm2d(channels), activation(act))


class SeparableConvBNAct(nn.Sequential):
    """Depthwise kxk + pointwise 1x1 (no norm between), BN, act: timm's SeparableConvNormAct."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, act: str = "relu") -> None:
        super().__init__(
            nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            activation(act),
        )


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: pool, 1x1 conv (bias) + act, 1x1 conv (bias) + gate, scale."""

    def __init__(self, channels: int, squeeze: int, act: str = "relu", gate: str = "sigmoid") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = activation(act)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = activation(gate)

    def forward(self, x):
        s = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * s


def se_channels(channels: int, ratio: float, divisor: int) -> int:
    """Squeeze width: ``int(channels * ratio)`` rounded by ``make_divisible`` when divisor > 1."""
    base = int(channels * ratio)
    return make_divisible(base, divisor) if divisor > 1 else max(1, base)
