"""Helpers for block-family tests: build one block instance, or a one-block-per-stage genotype."""

from __future__ import annotations

import torch
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


def randomize_bn(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with random BN statistics and classifier, so outputs are O(1), not ~0
    (an exported network compared on them shows real differences)."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    torch.nn.init.normal_(model.head.classifier.weight, 0, 0.1)
    return model.eval()
