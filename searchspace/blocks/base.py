"""The contract every block family (and stem) implements: parameters declared once, one builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from searchspace.errors import GenotypeError
from searchspace.params import Param


@dataclass(frozen=True)
class BlockArgs:
    """One concrete block instance: channels and stride resolved, parameters typed and scaled."""

    in_ch: int
    out: int
    stride: int
    params: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.params[name]


def conv_output_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded convolution with this stride."""
    return (size - 1) // stride + 1


def no_check(args: BlockArgs, path: str) -> None:
    """Default consistency check: nothing beyond the declared parameter ranges."""


def free_width(stride: int) -> bool:
    """Default width rule: a block may change its width at any stride."""
    return False


@dataclass(frozen=True)
class BlockFamily:
    """A block type: its parameters, how to build one instance, and its shape rules.

    ``check(args, path)`` raises GenotypeError for combinations a single parameter cannot catch
    (channels not divisible by groups, a channel split that needs in == out, ...).
    ``channel_params`` are parameters that count channels and so follow the width multiplier.
    ``output_size(size, stride)`` is the spatial size after the block.
    ``keeps_width(stride)`` is True when a block at that stride must output its input width (a
    stride-1 ShuffleNetV2 unit); ``check`` enforces it, the space and the latency table read it.
    """

    name: str
    doc: str
    params: tuple[Param, ...]
    build: Callable[[BlockArgs], nn.Module]
    check: Callable[[BlockArgs, str], None] = no_check
    channel_params: tuple[str, ...] = ()
    output_size: Callable[[int, int], int] = conv_output_size
    strides: tuple[int, ...] = (1, 2)
    keeps_width: Callable[[int], bool] = free_width
    param_index: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_index", {p.name: p for p in self.params})

    def param(self, name: str) -> Param:
        return self.param_index[name]


def require(condition: bool, path: str, message: str) -> None:
    """Raise GenotypeError(path, message) unless ``condition`` holds."""
    if not condition:
        raise GenotypeError(path, message)
