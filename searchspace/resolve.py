"""Turn a genotype into concrete block instances: scaling applied, channels and sizes traced.

This is the one place where width/depth/resolution scaling and shape arithmetic happen; the
validator (shape errors), the builder, the ``nas show`` table and the cost model all read it.
Imports run one way: this module reads :mod:`searchspace.genotype`, never the reverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from searchspace.blocks import FAMILIES, BlockArgs
from searchspace.errors import GenotypeError
from searchspace.genotype import SCALING_PARAMS, Genotype, parse_fields
from searchspace.layers import make_divisible
from searchspace.stems import HEAD_CHANNEL_PARAMS, STEM_CHANNEL_PARAMS, stem_output_size


@dataclass(frozen=True)
class ResolvedBlock:
    """One block instance: where it came from, its arguments and its input/output map sizes."""

    path: str
    stage: int
    type: str
    args: BlockArgs
    in_size: int
    out_size: int


@dataclass(frozen=True)
class ResolvedNetwork:
    in_channels: int
    resolution: int
    stem_type: str
    stem: dict
    stem_size: int
    blocks: tuple[ResolvedBlock, ...]
    head: dict
    final_channels: int
    final_size: int


def scale_channels(channels: int, width: float, divisor: int) -> int:
    """Channels under a width multiplier: unchanged at 1.0, else ``make_divisible(c * w, divisor)``."""
    return channels if width == 1.0 else make_divisible(channels * width, divisor)


def scale_repeats(repeat: int, depth: float) -> int:
    """Repeats under a depth multiplier: ``ceil(repeat * depth)``."""
    return repeat if depth == 1.0 else int(math.ceil(repeat * depth))


def parse_genotype(raw: Any) -> Genotype:
    """Validate plain data (from YAML or JSON) and return a :class:`Genotype` that always builds.

    Raises GenotypeError naming the first bad field: every field's type and range, then the shapes
    (channels and strides at the genotype's resolution).
    """
    genotype = parse_fields(raw)
    resolve(genotype)
    return genotype


def with_scaling(genotype: Genotype, width: float | None = None, depth: float | None = None,
                 resolution: int | None = None) -> Genotype:
    """A valid copy of ``genotype`` whose scaling fields are replaced by the given (non-None) values.

    Each new value is checked against its declared range and the shapes are traced again (a smaller
    resolution may not fit the strides), so the result always builds; GenotypeError otherwise.
    """
    scaling = dict(genotype.scaling)
    declared = {p.name: p for p in SCALING_PARAMS}
    for key, value in (("width", width), ("depth", depth), ("resolution", resolution)):
        if value is not None:
            scaling[key] = declared[key].check(value, f"scaling.{key}")
    scaled = replace(genotype, scaling=scaling)
    resolve(scaled)
    return scaled


def resolve(genotype: Genotype, in_channels: int | None = None) -> ResolvedNetwork:
    """Apply scaling and trace channels and map sizes; raise GenotypeError on impossible shapes."""
    width, depth = genotype.scaling["width"], genotype.scaling["depth"]
    divisor = genotype.scaling["divisor"]
    resolution = genotype.resolution
    in_ch = in_channels or genotype.input["channels"]

    def channels(params: dict, names: tuple[str, ...]) -> dict:
        return {k: (scale_channels(v, width, divisor) if k in names and v else v) for k, v in params.items()}

    stem = channels(genotype.stem, STEM_CHANNEL_PARAMS)
    size = stem_output_size(genotype.stem_type, stem, resolution)
    channels_now = stem["out"]
    stem_size = size
    blocks: list[ResolvedBlock] = []
    for s, stage in enumerate(genotype.stages):
        for j, spec in enumerate(stage):
            path = f"stages[{s}].blocks[{j}]"
            family = FAMILIES[spec.type]
            inner = family.inner(spec.params)
            params = channels(spec.params, family.channel_params + (inner.channel_params if inner else ()))
            params = {k: (scale_repeats(v, depth) if k in family.depth_params else v) for k, v in params.items()}
            out = scale_channels(spec.out, width, divisor)
            repeats = spec.repeat if family.depth_params else scale_repeats(spec.repeat, depth)
            for r in range(repeats):
                stride = spec.stride if r == 0 else 1
                if stride > 1 and size < 2:
                    raise GenotypeError(
                        f"{path}.stride",
                        f"{stride} reduces the {size}x{size} feature map below 1x1 at resolution "
                        f"{resolution}; use stride 1 here or a larger resolution")
                args = BlockArgs(in_ch=channels_now, out=out, stride=stride, params=params)
                family.check(args, path)
                out_size = family.out_size(size, args)
                if out_size < 1:
                    raise GenotypeError(path, f"leaves no feature map from {size}x{size} at resolution {resolution}; "
                                        "use a larger resolution, padding same or stride 1")
                blocks.append(ResolvedBlock(path, s, spec.type, args, size, out_size))
                size, channels_now = out_size, out
    head = channels(genotype.head, HEAD_CHANNEL_PARAMS)
    return ResolvedNetwork(in_ch, resolution, genotype.stem_type, stem, stem_size, tuple(blocks), head,
                           channels_now, size)
