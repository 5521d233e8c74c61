"""Plain conv block (VGG): kxk conv-BN-act; stride 2 max-pools (2x2) after the conv.

One kxk conv (stride 1, 'same' padding) - BN - act. At stride 2 a 2x2 stride-2 max pool follows,
as VGG closes each of its stages (VGG-16: conv stem 64, then per stage plain blocks whose last has
stride 2). torchvision's VGG convs have a bias even before BN (``bias: true``); VGG without BN is
``norm: false``.
"""

from __future__ import annotations

from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily
from searchspace.layers import ACTIVATIONS, ConvBNAct
from searchspace.params import Param

PARAMS = (
    Param("kernel", int, 3, "conv kernel size", choices=(1, 3, 5), search=(3, 5)),
    Param("bias", bool, False, "conv bias (torchvision's VGG: true)"),
    Param("norm", bool, True, "BatchNorm after the conv (VGG without _bn: false)"),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)


def pool_output_size(size: int, stride: int) -> int:
    """Spatial size after the block: MaxPool2d(2, 2) (floor) at stride 2."""
    return size // stride


def build(args: BlockArgs) -> nn.Module:
    conv = ConvBNAct(args.in_ch, args.out, args["kernel"], act=args["act"], bias=args["bias"], norm=args["norm"])
    if args.stride == 1:
        return conv
    return nn.Sequential(conv, nn.MaxPool2d(2, args.stride))


FAMILY = BlockFamily(
    name="plain",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=build,
    output_size=pool_output_size,
)
