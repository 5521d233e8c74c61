"""What can be searched and how a genotype becomes a network (imports torch and pyyaml only)."""

from __future__ import annotations

import os

from searchspace.builder import Network, build
from searchspace.errors import GenotypeError, NasError
from searchspace.genotype import BlockSpec, Genotype
from searchspace.io import genotype_text, load_genotype, save_genotype, zoo_names
from searchspace.layers import make_divisible
from searchspace.resolve import parse_genotype, resolve, with_scaling


def build_model(
    genotype: Genotype | str | os.PathLike | dict,
    num_classes: int | None = None,
    in_channels: int | None = None,
    width: float | None = None,
    depth: float | None = None,
    resolution: int | None = None,
) -> Network:
    """Build the PyTorch network of a genotype (object, path, YAML text or ``zoo:NAME``).

    ``num_classes`` / ``in_channels`` default to the genotype's own (``head.num_classes``,
    ``input.channels``); ``width``, ``depth`` and ``resolution`` replace its scaling fields, so
    ``build_model("zoo:efficientnet_b0", width=1.2, depth=1.4, resolution=300)`` is EfficientNet-B3.
    """
    g = with_scaling(load_genotype(genotype), width, depth, resolution)
    return build(g, num_classes=num_classes, in_channels=in_channels)


__all__ = [
    "BlockSpec", "Genotype", "GenotypeError", "NasError", "Network", "build", "build_model",
    "genotype_text", "load_genotype", "make_divisible", "parse_genotype", "resolve", "save_genotype",
    "with_scaling", "zoo_names",
]
