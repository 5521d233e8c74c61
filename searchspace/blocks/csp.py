"""Cross Stage Partial stage (CSPNet, as timm CrossStage) around blocks of another family.

One block of this family is a whole CSP stage: at stride 2 a 3x3 conv-BN-act (``groups``) to the
input width (``out`` with ``down_growth``); a 1x1 conv-BN(-act unless ``cross_linear``) to
``exp = round(out * expand)`` channels, split into two halves; ``blocks`` blocks of the ``inner``
family on the second half (the first from ``exp / 2`` to ``round(out * block_ratio)`` channels, all
at stride 1), then a 1x1 conv-BN-act back to ``exp / 2`` (transition b); both halves concatenated
and a 1x1 conv-BN-act to ``out`` (the final transition). The entry carries the inner family's
parameters too; ``groups`` and ``act`` are set here for the inner blocks as well (timm passes both).
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.blocks import basic, bottleneck, darknet, dense
from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.layers import ACTIVATIONS, ConvBNAct
from searchspace.params import Param

WRAPS = (bottleneck.FAMILY, darknet.FAMILY, dense.FAMILY, basic.FAMILY)

PARAMS = (
    Param("inner", str, "bottleneck", "family of the blocks on the partial path (their parameters follow "
          "in the entry)", choices=tuple(f.name for f in WRAPS), search=("bottleneck", "darknet", "dense")),
    Param("blocks", int, 1, "inner blocks (follows the depth multiplier)", low=1, high=64, search=(1, 2, 3)),
    Param("expand", float, 1.0, "width of the 1x1 expansion conv, split in two halves: round(out * expand)",
          low=0.05, high=8.0, search=(1.0, 2.0)),
    Param("block_ratio", float, 1.0, "output width of the inner blocks: round(out * block_ratio)", low=0.05,
          high=8.0),
    Param("down_growth", bool, False, "the stride-2 3x3 conv goes to out (else it keeps the input width)"),
    Param("cross_linear", bool, False, "no activation after the expansion conv"),
    Param("groups", int, 1, "groups of the stride-2 3x3 conv and of the inner blocks' 3x3 conv (bottleneck)",
          low=1, high=64),
    Param("act", str, "leaky_relu", "activation of every conv, the inner blocks' too", choices=ACTIVATIONS,
          search=("leaky_relu", "relu")),
)


def expanded_width(args: BlockArgs) -> int:
    """Output of the expansion conv: ``int(round(out * expand))`` (timm's rule)."""
    return int(round(args.out * args["expand"]))


def block_width(args: BlockArgs) -> int:
    """Output width of the inner blocks: ``int(round(out * block_ratio))``."""
    return int(round(args.out * args["block_ratio"]))


def down_width(args: BlockArgs) -> int:
    """Output of the stride-2 3x3 conv: ``out`` with ``down_growth``, else the input width."""
    return args.out if args["down_growth"] else args.in_ch


def inner_args(args: BlockArgs) -> list[BlockArgs]:
    """The inner blocks' arguments, in order (stride 1; the wrapper's groups and act passed on)."""
    inner = FAMILY.inner(args.params)
    params = {p.name: args[p.name] for p in inner.params}
    half, width = expanded_width(args) // 2, block_width(args)
    return [BlockArgs(half if i == 0 else width, width, 1, params) for i in range(args["blocks"])]


def check(args: BlockArgs, path: str) -> None:
    exp, groups = expanded_width(args), args["groups"]
    require(exp >= 2 and exp % 2 == 0, f"{path}.expand",
            f"{args['expand']:g} gives round({args.out} * {args['expand']:g}) = {exp} channels; the expansion "
            f"is split in two halves, so it needs an even width of at least 2")
    require(block_width(args) >= 1, f"{path}.block_ratio",
            f"{args['block_ratio']:g} gives round({args.out} * {args['block_ratio']:g}) = 0 channels")
    if args.stride > 1:
        require(args.in_ch % groups == 0 and down_width(args) % groups == 0, f"{path}.groups",
                f"{groups} does not divide the stride-2 conv's widths ({args.in_ch} -> {down_width(args)}); "
                f"use a divisor of both")
    inner = FAMILY.inner(args.params)
    for block in inner_args(args):
        inner.check(block, path)


class CrossStage(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        act, exp = args["act"], expanded_width(args)
        self.half = exp // 2
        if args.stride > 1:
            self.conv_down: nn.Module = ConvBNAct(args.in_ch, down_width(args), 3, args.stride,
                                                  groups=args["groups"], act=act)
            width = down_width(args)
        else:
            self.conv_down = nn.Identity()
            width = args.in_ch
        self.conv_exp = ConvBNAct(width, exp, 1, act="identity" if args["cross_linear"] else act)
        inner = FAMILY.inner(args.params)
        self.blocks = nn.Sequential(*[inner.build(block) for block in inner_args(args)])
        self.conv_transition_b = ConvBNAct(block_width(args), self.half, 1, act=act)
        self.conv_transition = ConvBNAct(exp, args.out, 1, act=act)

    def forward(self, x):
        x = self.conv_exp(self.conv_down(x))
        cross, partial = torch.split(x, self.half, dim=1)
        partial = self.conv_transition_b(self.blocks(partial))
        return self.conv_transition(torch.cat([cross, partial], dim=1))


FAMILY = BlockFamily(
    name="csp",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=CrossStage,
    check=check,
    depth_params=("blocks",),
    wraps=WRAPS,
)
