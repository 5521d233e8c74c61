"""How big a genotype's network is, counted before anything is allocated, and the limit it must respect.

Parameters are counted exactly: each distinct stem, block and head is built once on PyTorch's meta
device (shapes only, no memory) and its counts are cached for the process. Activation memory is an
upper estimate from the shape trace: every conv and 2-d norm output of a part at the part's input map
size, every linear and 1-d norm output once, plus the input image, in float32 at batch 1 (roughly what a
training step keeps for the backward pass). :func:`check_size` refuses a network over the limit with
one line naming the field to change; :func:`searchspace.build` calls it before allocating anything.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from searchspace.blocks import FAMILIES, BlockArgs
from searchspace.errors import GenotypeError, NasError
from searchspace.genotype import Genotype
from searchspace.resolve import ResolvedNetwork, resolve
from searchspace.stems import Head, build_stem

BYTES_PER_VALUE = 4  # float32
PARAMS_ENV, ACTIVATION_ENV = "NAS_MAX_PARAMS", "NAS_MAX_ACTIVATION_GIB"
REFERENCE_RESOLUTION = 224  # a network that fits at this resolution is too big only because of its resolution


@dataclass(frozen=True)
class SizeLimit:
    """The largest network :func:`searchspace.build` allocates (EfficientNet-B7 at 600 px: 66M, ~8 GiB)."""

    max_params: float = 2e9
    max_activation_gib: float = 64.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SizeLimit:
        """The defaults, raised or lowered by ``NAS_MAX_PARAMS`` and ``NAS_MAX_ACTIVATION_GIB``."""
        env = os.environ if env is None else env
        default = cls()
        return cls(_env_number(env, PARAMS_ENV, default.max_params),
                   _env_number(env, ACTIVATION_ENV, default.max_activation_gib))


def _env_number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise NasError(f"{name}: {raw!r} is not a positive number")
    return value


@dataclass(frozen=True)
class PartSize:
    """One part of a network: ``input`` (the image), ``stem``, a block entry ``stages[i].blocks[j]`` (all its
    repeats) or ``head``."""

    path: str
    params: int
    activation_bytes: int


@dataclass(frozen=True)
class NetworkSize:
    parts: tuple[PartSize, ...]
    resolution: int

    @property
    def params(self) -> int:
        return sum(p.params for p in self.parts)

    @property
    def activation_bytes(self) -> int:
        return sum(p.activation_bytes for p in self.parts)


@dataclass(frozen=True)
class _Counts:
    params: int
    map_channels: int   # channels of conv / 2-d norm outputs (each a map of the part's size)
    flat_features: int  # features of linear / 1-d norm outputs


def _count(make: Callable[[], nn.Module]) -> _Counts:
    with torch.device("meta"):
        module = make()
    maps = flat = 0
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            maps += m.out_channels
        elif isinstance(m, nn.BatchNorm2d):
            maps += m.num_features
        elif isinstance(m, nn.Linear):
            flat += m.out_features
        elif isinstance(m, nn.BatchNorm1d):
            flat += m.num_features
    return _Counts(sum(p.numel() for p in module.parameters()), maps, flat)


def _items(params: dict) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


@functools.lru_cache(maxsize=4096)
def _block_counts(block_type: str, in_ch: int, out: int, stride: int, params: tuple) -> _Counts:
    return _count(lambda: FAMILIES[block_type].build(BlockArgs(in_ch, out, stride, dict(params))))


@functools.lru_cache(maxsize=1024)
def _stem_counts(stem_type: str, in_ch: int, params: tuple) -> _Counts:
    return _count(lambda: build_stem(stem_type, dict(params), in_ch))


@functools.lru_cache(maxsize=1024)
def _head_counts(in_ch: int, num_classes: int, params: tuple) -> _Counts:
    return _count(lambda: Head(dict(params), in_ch, num_classes))


def _part(path: str, counts: _Counts, size: int, repeats: int = 1) -> PartSize:
    values = counts.map_channels * size * size + counts.flat_features
    return PartSize(path, counts.params * repeats, values * BYTES_PER_VALUE * repeats)


def network_size(genotype: Genotype, num_classes: int | None = None, in_channels: int | None = None,
                 net: ResolvedNetwork | None = None) -> NetworkSize:
    """Parameters (exact) and activation memory (upper estimate, batch 1) of the network
    ``build(genotype, num_classes, in_channels)`` would allocate, without allocating it."""
    net = net or resolve(genotype, in_channels)
    image = PartSize("input", 0, net.in_channels * net.resolution ** 2 * BYTES_PER_VALUE)
    parts = [image, _part("stem", _stem_counts(net.stem_type, net.in_channels, _items(net.stem)), net.resolution)]
    for block in net.blocks:
        a = block.args
        part = _part(block.path, _block_counts(block.type, a.in_ch, a.out, a.stride, _items(a.params)), block.in_size)
        if parts[-1].path == part.path:  # another repeat of the same entry
            part = PartSize(part.path, parts[-1].params + part.params, parts[-1].activation_bytes + part.activation_bytes)
            parts.pop()
        parts.append(part)
    classes = num_classes or net.head["num_classes"]
    parts.append(_part("head", _head_counts(net.final_channels, classes, _items(net.head)), net.final_size))
    return NetworkSize(tuple(parts), net.resolution)


def check_size(genotype: Genotype, num_classes: int | None = None, in_channels: int | None = None,
               limit: SizeLimit | None = None) -> NetworkSize:
    """The network's size; GenotypeError naming the field to change when it is over ``limit``
    (default: :meth:`SizeLimit.from_env`)."""
    limit = limit or SizeLimit.from_env()
    size = network_size(genotype, num_classes, in_channels)
    if size.params > limit.max_params:
        worst = max(size.parts, key=lambda p: p.params)
        field, value = _widest_field(genotype, worst.path, num_classes, in_channels)
        raise GenotypeError(field, f"{value} gives the network {size.params:.3g} parameters ({_name(worst.path)}: "
                            f"{worst.params:.3g}{_scaling_note(genotype)}), over the limit of {limit.max_params:.3g}; "
                            f"use smaller values or raise the limit with {PARAMS_ENV}")
    gib = size.activation_bytes / 2**30
    if gib > limit.max_activation_gib:
        worst = max(size.parts, key=lambda p: p.activation_bytes)
        at_reference = gib * (REFERENCE_RESOLUTION / size.resolution) ** 2
        if size.resolution > REFERENCE_RESOLUTION and at_reference <= limit.max_activation_gib:
            field = "scaling.resolution" if genotype.scaling.get("resolution") else "input.resolution"
            value = size.resolution
        else:
            field, value = _widest_field(genotype, worst.path, num_classes, in_channels)
        raise GenotypeError(field, f"{value} gives the network about {_gib(gib)} GiB of activations at batch 1 "
                            f"({_name(worst.path)}: {_gib(worst.activation_bytes / 2**30)} GiB, at resolution "
                            f"{size.resolution}{_scaling_note(genotype)}), over the limit of "
                            f"{limit.max_activation_gib:g} GiB; use a smaller resolution or fewer channels, or raise "
                            f"the limit with {ACTIVATION_ENV}")
    return size


def _gib(value: float) -> str:
    return f"{value:,.1f}" if value >= 1 else f"{value:.2g}"


def _name(path: str) -> str:
    return {"input": "the input image", "stem": "the stem", "head": "the head"}.get(path, path)


def _scaling_note(genotype: Genotype) -> str:
    notes = [f"{k} {genotype.scaling[k]:g}" for k in ("width", "depth") if genotype.scaling[k] != 1.0]
    return "".join(f", {note}" for note in notes)


def _widest_field(genotype: Genotype, path: str, num_classes: int | None,
                  in_channels: int | None) -> tuple[str, int]:
    """The (field, value) with the most channels in a part: what most likely makes it too big."""
    if path == "input":
        fields = {"input.channels": in_channels or genotype.input["channels"]}
    elif path == "stem":
        fields = {"input.channels": in_channels or genotype.input["channels"],
                  **{f"stem.{k}": v for k, v in genotype.stem.items() if k in ("out", "mid")}}
    elif path == "head":
        fields = {"head.conv": genotype.head["conv"], "head.hidden": genotype.head["hidden"],
                  "head.num_classes": num_classes or genotype.head["num_classes"]}
    else:
        spec = {f"stages[{s}].blocks[{j}]": b for s, stage in enumerate(genotype.stages) for j, b in enumerate(stage)}[path]
        channel_params = FAMILIES[spec.type].channel_params
        fields = {f"{path}.out": spec.out, **{f"{path}.{k}": v for k, v in spec.params.items() if k in channel_params}}
    field = max(fields, key=lambda k: fields[k] or 0)
    return field, fields[field]
