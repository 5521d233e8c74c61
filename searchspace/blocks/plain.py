"""Plain conv block (VGG, AlexNet, LeNet): kxk conv-BN-act; stride 2 max-pools after the conv.

One kxk conv (stride 1)-BN-act, 'same' padding or ``padding: valid`` (LeNet's 5x5 convs, Inception's
stem); ``lrn`` adds a local response normalisation after the act (AlexNet's paper). At stride 2 a
stride-2 max pool follows: 2x2 (``pool: max2``, as VGG closes each of its stages) or 3x3 without
padding (``pool: max3``: AlexNet, Inception-v3's stem). torchvision's VGG and AlexNet convs have a
bias (``bias: true``); VGG without BN and AlexNet are ``norm: false``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily
from searchspace.layers import ACTIVATIONS, ConvBNAct
from searchspace.params import Param

PARAMS = (
    Param("kernel", int, 3, "conv kernel size", choices=(1, 3, 5), search=(3, 5)),
    Param("bias", bool, False, "conv bias (torchvision's VGG: true)"),
    Param("norm", bool, True, "BatchNorm after the conv (VGG without _bn: false)"),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
    Param("padding", str, "same", "conv padding: same ((kernel - 1) / 2) or valid (none: LeNet)",
          choices=("same", "valid"), omit_default=True),
    Param("pool", str, "max2", "the stride-2 max pool after the conv: max2 (2x2, VGG) or max3 (3x3, no "
          "padding: AlexNet)", choices=("max2", "max3"), omit_default=True),
    Param("lrn", bool, False, "local response normalisation after the act (size 5, alpha 1e-4, beta 0.75, "
          "k 2: AlexNet's paper)", omit_default=True),
)


class _OnnxLRN(torch.autograd.Function):
    """torch's local response norm, written to ONNX as its LRN operator (the legacy exporter otherwise traces
    torch's reshape to the input's sizes and loses the map's shape, which an adaptive pool after it needs)."""

    @staticmethod
    def forward(ctx, x, size: int, alpha: float, beta: float, k: float):  # noqa: ANN001, ANN205
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size: int, alpha: float, beta: float, k: float):  # noqa: ANN001, ANN205
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class LocalResponseNorm(nn.LocalResponseNorm):
    """nn.LocalResponseNorm (AlexNet's: size 5, alpha 1e-4, beta 0.75, k 2) that exports to ONNX's LRN."""

    def __init__(self) -> None:
        super().__init__(5, 1e-4, 0.75, 2.0)

    def forward(self, x):
        if torch.onnx.is_in_onnx_export() and not torch.compiler.is_compiling():
            return _OnnxLRN.apply(x, self.size, self.alpha, self.beta, self.k)
        return super().forward(x)


def pool_output_size(size: int, stride: int) -> int:
    """Spatial size after a block at the default padding and pool: MaxPool2d(2, 2) (floor) at stride 2."""
    return size // stride


def size_rule(size: int, args: BlockArgs) -> int:
    """Spatial size after the block: the conv (valid padding shrinks it), then the pool (floor) at stride 2."""
    if args["padding"] == "valid":
        size -= args["kernel"] - 1
    if args.stride == 1:
        return size
    return (size - 3) // 2 + 1 if args["pool"] == "max3" else size // 2


def build(args: BlockArgs) -> nn.Module:
    conv = ConvBNAct(args.in_ch, args.out, args["kernel"], act=args["act"], bias=args["bias"], norm=args["norm"],
                     padding=0 if args["padding"] == "valid" else None)
    after: list[nn.Module] = [LocalResponseNorm()] if args["lrn"] else []
    if args.stride > 1:
        after.append(nn.MaxPool2d(3, 2) if args["pool"] == "max3" else nn.MaxPool2d(2, args.stride))
    return nn.Sequential(conv, *after) if after else conv


FAMILY = BlockFamily(
    name="plain",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=build,
    output_size=pool_output_size,
    size_rule=size_rule,
)
