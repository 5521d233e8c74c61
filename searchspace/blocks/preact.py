"""Pre-activation residual block (ResNetV2, as timm PreActBasic / PreActBottleneck).

BN-act on the block input, then the convs, each after its own BN-act: ``basic`` two 3x3 convs
(the first with the stride); ``bottleneck`` 1x1 to ``mid`` -> 3x3 (stride) -> 1x1 to ``out`` with
``mid = make_divisible(out / expansion, 8)``. Plus the shortcut: identity when stride 1 and in ==
out, else a bare 1x1 conv (stride) of the pre-activated input. No activation after the add: the
output is not normalised, so a network ending in these blocks wants ``head.norm``.
"""

from __future__ import annotations

from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily
from searchspace.layers import ACTIVATIONS, BNAct, make_divisible
from searchspace.params import Param

PARAMS = (
    Param("form", str, "bottleneck", "basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1)",
          choices=("basic", "bottleneck"), search=("basic", "bottleneck")),
    Param("expansion", int, 4, "bottleneck form: out / mid, mid = make_divisible(out / expansion, 8)",
          low=1, high=8),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)


def mid_width(args: BlockArgs) -> int:
    """The bottleneck width: ``out`` for the basic form, ``make_divisible(out / expansion, 8)`` else."""
    if args["form"] == "basic":
        return args.out
    return make_divisible(args.out / args["expansion"], 8)


def _conv(in_ch: int, out: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out, kernel, stride, (kernel - 1) // 2, bias=False)


class PreActBlock(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        act, mid, stride = args["act"], mid_width(args), args.stride
        if stride > 1 or args.in_ch != args.out:
            self.shortcut: nn.Module | None = _conv(args.in_ch, args.out, 1, stride)
        else:
            self.shortcut = None
        self.norm1 = BNAct(args.in_ch, act)
        if args["form"] == "basic":
            layers = [_conv(args.in_ch, mid, 3, stride), BNAct(mid, act), _conv(mid, args.out, 3)]
        else:
            layers = [_conv(args.in_ch, mid, 1), BNAct(mid, act), _conv(mid, mid, 3, stride), BNAct(mid, act),
                      _conv(mid, args.out, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        pre = self.norm1(x)
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        return self.body(pre) + shortcut


FAMILY = BlockFamily(
    name="preact",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=PreActBlock,
)
