"""Cost counting: parameters, multiply-accumulates (MACs), memory access, kernels, element-wise work.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2), counted on one image at
the genotype's resolution. Memory access (bytes read + written, ShuffleNetV2's MAC), kernels launched
(fragmentation) and element-wise elements come from :class:`OpCounter`, a dispatch mode that sees
every aten op of the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from searchspace.builder import build
from searchspace.genotype import Genotype


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


def params_and_macs(genotype: Genotype, num_classes: int | None = None, in_channels: int | None = None,
                    resolution: int | None = None) -> tuple[int, int]:
    """(params, MACs) of the network ``genotype`` builds, counted on one image at its own resolution
    and input channels unless told otherwise (data with another channel count or size)."""
    model = build(genotype, num_classes=num_classes, in_channels=in_channels)
    channels = in_channels or genotype.input["channels"]
    return count_params(model), count_macs(model, resolution or genotype.resolution, channels)


@dataclass(frozen=True)
class PartCost:
    """Cost of one part of a network (the stem, a stage or the head)."""

    name: str
    params: int
    macs: int
    out_shape: tuple[int, ...]
    mem_bytes: int = 0
    kernels: int = 0
    elementwise: int = 0


@torch.no_grad()
def part_costs(model: nn.Module, resolution: int, in_channels: int = 3) -> list[PartCost]:
    """Params, MACs, output shape, memory access, kernels and element-wise elements of the stem, each
    stage and the head of a built Network."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, in_channels, resolution, resolution)
    parts = [("stem", model.stem)] + [(f"stage {i}", s) for i, s in enumerate(model.stages)]
    parts.append(("head", model.head))
    out = []
    for name, module in parts:
        ops = OpCounter()
        with FlopCounterMode(display=False) as counter, ops:
            x = module(x)
        out.append(PartCost(name, count_params(module), int(counter.get_total_flops() // 2), tuple(x.shape[1:]),
                            ops.mem_bytes, ops.kernels, ops.elementwise))
    model.train(was_training)
    return out


# --- memory access, kernels and element-wise work (ShuffleNetV2's guidelines G1-G4) ---------------

ELEMENTWISE = frozenset({
    "add", "sub", "mul", "div", "relu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "sigmoid", "silu",
    "gelu", "tanh", "clamp", "clamp_min", "neg", "exp", "native_batch_norm", "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training", "batch_norm", "leaky_relu", "elu", "where", "maximum", "minimum",
})
NOT_ELEMENTWISE = frozenset({"clone", "copy"})  # data movement, tagged pointwise by aten
NOT_KERNELS = frozenset({"empty", "empty_like", "empty_strided", "detach", "alias", "lift_fresh", "set", "resize"})


def _base_name(func) -> str:
    """``aten.relu_.default`` -> ``relu``."""
    name = func.overloadpacket.__name__
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


class OpCounter(TorchDispatchMode):
    """Counts, over the aten ops a forward pass executes, the bytes read and written, the kernels
    launched and the elements produced by element-wise ops.

    Memory access follows ShuffleNetV2's MAC: every tensor an op reads (activations and weights) plus
    every tensor it writes; an in-place op reads and writes its input. Views and allocations are
    neither kernels nor memory traffic. Batch norm (eval) counts as element-wise.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mem_bytes = 0
        self.kernels = 0
        self.elementwise = 0
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = _base_name(func)
        if func.is_view or name in NOT_KERNELS:
            return out
        inputs = [t for t in tree_flatten((args, kwargs or {}))[0] if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if "batch_norm" in name:
            outputs = outputs[:1]  # saved mean / invstd are not written in eval mode
        self.kernels += 1
        self.ops[name] = self.ops.get(name, 0) + 1
        self.mem_bytes += sum(t.numel() * t.element_size() for t in inputs + outputs)
        if name in ELEMENTWISE or (torch.Tag.pointwise in func.tags and name not in NOT_ELEMENTWISE):
            self.elementwise += sum(t.numel() for t in outputs[:1])
        return out


@dataclass(frozen=True)
class OpCost:
    """Everything the cost model counts for one module on one input."""

    params: int
    macs: int
    mem_bytes: int
    kernels: int
    elementwise: int


@torch.no_grad()
def op_cost(model: nn.Module, x: torch.Tensor) -> OpCost:
    """Params, MACs, memory access (bytes), kernels launched and element-wise elements of ``model(x)``.

    Runs in eval mode; ``x`` may live on the meta device (shapes only, nothing computed).
    """
    was_training = model.training
    model.eval()
    counter = OpCounter()
    with FlopCounterMode(display=False) as flops, counter:
        model(x)
    model.train(was_training)
    return OpCost(count_params(model), int(flops.get_total_flops() // 2), counter.mem_bytes, counter.kernels,
                  counter.elementwise)
