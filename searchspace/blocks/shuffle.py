"""ShuffleNetV2 unit (torchvision InvertedResidual): channel split, two branches, shuffle.

Stride 1: the input is split in half; one half passes through, the other goes through
1x1 conv-BN-act -> depthwise kxk-BN -> 1x1 conv-BN-act; both halves are concatenated and
shuffled (groups 2). Needs in == out. Stride 2: no split; branch 1 is depthwise kxk (stride)-BN ->
1x1 conv-BN-act, branch 2 as above with the depthwise conv strided; each gives out / 2 channels.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.layers import ACTIVATIONS, ConvBNAct
from searchspace.params import Param

PARAMS = (
    Param("kernel", int, 3, "depthwise kernel size", choices=(3, 5, 7), search=(3, 5, 7)),
    Param("act", str, "relu", "activation after the 1x1 convs", choices=ACTIVATIONS,
          search=("relu", "hswish")),
)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups, in the input's memory format.

    A channels_last input is shuffled as the (N, H, W, C) array it is, so the output stays
    channels_last: the layers after the shuffle get the layout they were built for, instead of a
    contiguous tensor that every following convolution converts back (as torchvision's shuffle does).
    """
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        nhwc = x.permute(0, 2, 3, 1)
        shuffled = nhwc.reshape(n, h, w, groups, c // groups).transpose(3, 4).reshape(n, h, w, c)
        return shuffled.permute(0, 3, 1, 2)
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def keeps_width(stride: int) -> bool:
    """At stride 1 the channel split passes half the input through: out must equal in."""
    return stride == 1


def check(args: BlockArgs, path: str) -> None:
    require(args.out % 2 == 0, f"{path}.out",
            f"{args.out} is odd; a shuffle block needs an even output width (two halves of out / 2)")
    if keeps_width(args.stride):
        require(args.in_ch == args.out, f"{path}.out",
                f"{args.out} differs from the block input width {args.in_ch}; at stride 1 the channel "
                f"split needs out == in ({args.in_ch}); use stride 2 to change the width")


class ShuffleUnit(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        k, act, stride = args["kernel"], args["act"], args.stride
        half = args.out // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                ConvBNAct(args.in_ch, args.in_ch, k, stride, groups=args.in_ch, act="identity"),
                ConvBNAct(args.in_ch, half, 1, act=act),
            )
        else:
            self.branch1 = None
        branch2_in = args.in_ch if stride > 1 else half
        self.branch2 = nn.Sequential(
            ConvBNAct(branch2_in, half, 1, act=act),
            ConvBNAct(half, half, k, stride, groups=half, act="identity"),
            ConvBNAct(half, half, 1, act=act),
        )

    def forward(self, x):
        if self.branch1 is None:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


FAMILY = BlockFamily(
    name="shuffle",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=ShuffleUnit,
    check=check,
    keeps_width=keeps_width,
)
