"""Helpers for block-family tests: build one block instance, or a one-block-per-stage genotype."""

from __future__ import annotations

from torch import nn

from searchspace.blocks import BlockArgs, get_family
from searchspace.params import check_params


def make_block(name: str, in_ch: int, out: int, stride: int, **params) -> nn.Module:
    family = get_family(name)
    declared = family.entry_params(params, "b")  # a wrapper's (csp) include its inner family's
    args = BlockArgs(in_ch=in_ch, out=out, stride=stride, params=check_params(params, declared, "b"))
    family.check(args, "b")
    return family.build(args)


def genotype(blocks: list[dict], resolution: int = 32) -> dict:
    return {
        "format": "nas-genotype/1",
        "name": "t",
        "input": {"channels": 3, "resolution": resolution},
        "stem": {"type": "conv", "out": 16, "kernel": 3, "stride": 1},
        "stages": [{"blocks": [b]} for b in blocks],
        "head": {"num_classes": 10},
    }
