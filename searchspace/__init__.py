"""What can be searched and how a genotype becomes a network (imports torch and pyyaml only).

The names below load their module on first use, so that a torch-free module of this package
(``searchspace.settings``, ``searchspace.params``, ``searchspace.errors``) imports without torch.
Shape tracing is ``searchspace.resolve.resolve`` (the submodule shares the function's name).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from searchspace.errors import GenotypeError, NasError

if TYPE_CHECKING:
    from searchspace.builder import Network
    from searchspace.genotype import Genotype
    from searchspace.size import SizeLimit

_LAZY = {
    "Network": "builder", "build": "builder", "BlockSpec": "genotype", "Genotype": "genotype",
    "genotype_text": "io", "load_genotype": "io", "save_genotype": "io", "zoo_names": "io",
    "make_divisible": "layers", "parse_genotype": "resolve", "with_scaling": "resolve",
    "NetworkSize": "size", "SizeLimit": "size", "check_size": "size", "network_size": "size",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"searchspace.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'searchspace' has no attribute {name!r}")


def build_model(
    genotype: Genotype | str | os.PathLike | dict,
    num_classes: int | None = None,
    in_channels: int | None = None,
    width: float | None = None,
    depth: float | None = None,
    resolution: int | None = None,
    limit: SizeLimit | None = None,
    weights: str | os.PathLike | Mapping[str, Any] | None = None,
) -> Network:
    """Build the PyTorch network of a genotype (object, path, YAML text or ``zoo:NAME``).

    ``num_classes`` / ``in_channels`` default to the genotype's own (``head.num_classes``,
    ``input.channels``); ``width``, ``depth`` and ``resolution`` replace its scaling fields, so
    ``build_model("zoo:efficientnet_b0", width=1.2, depth=1.4, resolution=300)`` is EfficientNet-B3.
    A network larger than ``limit`` (see :func:`build`) is refused before anything is allocated.
    ``weights`` (a state dict, or a file of one such as ``nas train``'s ``best.pt``) are loaded into it;
    a state dict that does not fit raises a one-line :class:`NasError`.
    """
    from searchspace.builder import build
    from searchspace.io import load_genotype
    from searchspace.resolve import with_scaling

    g = with_scaling(load_genotype(genotype), width, depth, resolution)
    model = build(g, num_classes=num_classes, in_channels=in_channels, limit=limit)
    if weights is not None:
        from searchspace.weights import load_weights

        load_weights(model, weights)
    return model


__all__ = [
    "BlockSpec", "Genotype", "GenotypeError", "NasError", "Network", "NetworkSize", "SizeLimit", "build",
    "build_model", "check_size", "network_size",
    "genotype_text", "load_genotype", "make_divisible", "parse_genotype", "save_genotype",
    "with_scaling", "zoo_names",
]
