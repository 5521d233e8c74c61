"""Cost counting: parameters and multiply-accumulates (MACs) of a network.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2), counted on one image at
the genotype's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int
    resolution: int


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, resolution: int, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on a single ``resolution`` x ``resolution`` image."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, in_channels, resolution, resolution)
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops() // 2)


def network_cost(model: nn.Module, resolution: int, in_channels: int = 3) -> Cost:
    """Params and MACs of ``model`` at ``resolution``."""
    return Cost(count_params(model), count_macs(model, resolution, in_channels), resolution)


@dataclass(frozen=True)
class PartCost:
    """Cost of one part of a network (the stem, a stage or the head)."""

    name: str
    params: int
    macs: int
    out_shape: tuple[int, ...]


@torch.no_grad()
def part_costs(model: nn.Module, resolution: int, in_channels: int = 3) -> list[PartCost]:
    """Params, MACs and output shape of the stem, each stage and the head of a built Network."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, in_channels, resolution, resolution)
    parts = [("stem", model.stem)] + [(f"stage {i}", s) for i, s in enumerate(model.stages)]
    parts.append(("head", model.head))
    out = []
    for name, module in parts:
        with FlopCounterMode(display=False) as counter:
            x = module(x)
        out.append(PartCost(name, count_params(module), int(counter.get_total_flops() // 2), tuple(x.shape[1:])))
    model.train(was_training)
    return out
