"""The NAS-Bench-201 cell network (Dong & Yang 2020) in PyTorch, for zero-cost proxy evaluation.

Follows the benchmark's ``TinyNetwork`` / ``InferCell`` (xautodl): stem conv 3x3 -> 16 + BN; three stages
of ``cells`` cells at C = 16, 32, 64, joined by residual reduction blocks (ReLU-Conv3x3(s2)-BN,
ReLU-Conv3x3-BN, shortcut avg-pool 2x2 + conv 1x1); BN + ReLU, global average pool, linear classifier.
A cell is a DAG of 4 nodes; node i sums ``op(node j)`` over its edges j < i; the cell outputs node 3.
Ops: ``none`` (zero), ``skip_connect`` (identity), ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU-Conv-BN),
``avg_pool_3x3`` (stride 1, padding not counted). Weights keep PyTorch's default initialisation (as the
benchmark's and the zero-cost-proxy papers' code do). Parameter counts match the benchmark's ``params``.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.errors import NasError

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (from, to) in arch-string order


def parse_arch(arch: str) -> tuple[str, ...]:
    """The six edge ops of ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, in ``EDGES`` order."""
    nodes = arch.strip().split("+")
    if len(nodes) != 3:
        raise NasError(f"nb201 arch {arch!r}: expected 3 nodes separated by '+', got {len(nodes)}")
    ops: list[str] = []
    for target, node in enumerate(nodes, start=1):
        entries = [e for e in node.strip().strip("|").split("|")]
        if len(entries) != target:
            raise NasError(f"nb201 arch {arch!r}: node {target} needs {target} inputs, got {len(entries)}")
        for source, entry in enumerate(entries):
            op, _, index = entry.partition("~")
            if op not in NB201_OPS:
                raise NasError(f"nb201 arch {arch!r}: op {op!r} is not one of {', '.join(NB201_OPS)}")
            if index != str(source):
                raise NasError(f"nb201 arch {arch!r}: edge {entry!r} must read from node {source}")
            ops.append(op)
    return tuple(ops)


def arch_string(ops: tuple[str, ...] | list[str]) -> str:
    """Inverse of ``parse_arch``."""
    parts = [[f"{ops[k]}~{src}" for k, (src, dst) in enumerate(EDGES) if dst == node] for node in (1, 2, 3)]
    return "+".join("|" + "|".join(p) + "|" for p in parts)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


def make_op(op: str, channels: int) -> nn.Module | None:
    """The module of one edge op at stride 1 (``None`` for ``none``: the edge is dropped)."""
    if op == "none":
        return None
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise NasError(f"nb201 op {op!r} is not one of {', '.join(NB201_OPS)}")


class Cell(nn.Module):
    """One NB201 cell: 4 nodes, 6 edges; ``none`` edges contribute nothing."""

    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        self.edges = list(EDGES)
        self.ops = nn.ModuleList(make_op(op, channels) or nn.Identity() for op in ops)
        self.live = [op != "none" for op in ops]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            terms = [self.ops[k](nodes[src]) for k, (src, dst) in enumerate(self.edges)
                     if dst == target and self.live[k]]
            nodes.append(sum(terms[1:], terms[0]) if terms else torch.zeros_like(x))
        return nodes[3]


class ResidualReduction(nn.Module):
    """NB201's ResNet basic block between stages: stride 2, channels c_in -> c_out."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The NB201 macro skeleton around one cell genotype."""

    def __init__(self, arch: str, num_classes: int = 10, channels: int = 16, cells: int = 5,
                 resolution: int = 32) -> None:
        super().__init__()
        self.arch = arch
        self.resolution = resolution
        ops = parse_arch(arch)
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(Cell(ops, c) for _ in range(cells))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


def build_nb201(arch: str, num_classes: int = 10, channels: int = 16, cells: int = 5,
                resolution: int = 32) -> NB201Network:
    """The NB201 network of ``arch`` (CIFAR: 10 / 100 classes at 32 px; ImageNet16-120: 120 at 16 px)."""
    return NB201Network(arch, num_classes, channels, cells, resolution)


__all__ = ["EDGES", "NB201_OPS", "NB201Network", "arch_string", "build_nb201", "parse_arch"]
