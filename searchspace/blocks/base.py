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
    ``output_size(size, stride)`` is the spatial size after the block; ``size_rule(size, args)``
    replaces it where the block's parameters decide the size too (valid padding, a reduction's
    unpadded convs); read both through :meth:`out_size`.
    ``keeps_width(stride)`` is True when a block at that stride must output its input width (a
    stride-1 ShuffleNetV2 unit); ``check`` enforces it, the space and the latency table read it.
    ``depth_params`` count layers inside one block (a CSP stage's inner blocks): the depth
    multiplier scales them (ceil) and leaves the entry's ``repeat`` alone.
    ``wraps`` makes a stage wrapper (CSP): its ``inner`` parameter names one of these families, whose
    parameters the entry carries too (those the wrapper does not declare itself; a parameter both
    declare, such as ``act``, is the wrapper's and is passed on to the inner blocks).
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
    depth_params: tuple[str, ...] = ()
    wraps: tuple[BlockFamily, ...] = ()
    size_rule: Callable[[int, BlockArgs], int] | None = None
    param_index: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_index", {p.name: p for p in self.params})

    def out_size(self, size: int, args: BlockArgs) -> int:
        """Spatial size after one block with these arguments (below 1: the map is too small for it)."""
        return self.size_rule(size, args) if self.size_rule else self.output_size(size, args.stride)

    def param(self, name: str) -> Param:
        return self.param_index[name]

    def inner(self, params: dict[str, Any]) -> BlockFamily | None:
        """The family a wrapper entry runs on its blocks (its ``inner`` value); None for other families."""
        if not self.wraps:
            return None
        return next(f for f in self.wraps if f.name == params["inner"])

    def inner_params(self, inner: BlockFamily) -> tuple[Param, ...]:
        """The parameters an entry takes from its inner family: those this wrapper does not declare."""
        return tuple(p for p in inner.params if p.name not in self.param_index)

    def entry_params(self, raw: dict[str, Any], path: str) -> tuple[Param, ...]:
        """Every parameter an entry of this family declares; a wrapper's depend on its ``inner`` value."""
        if not self.wraps:
            return self.params
        declared = self.param("inner")
        inner = self.inner({"inner": declared.check(raw.get("inner", declared.default), f"{path}.inner")})
        return self.params + self.inner_params(inner)


def require(condition: bool, path: str, message: str) -> None:
    """Raise GenotypeError(path, message) unless ``condition`` holds."""
    if not condition:
        raise GenotypeError(path, message)
