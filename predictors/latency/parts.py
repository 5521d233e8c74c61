"""Parts of a network (stem, each block instance, head) and the fast cost features of a genotype.

A genotype resolves (``searchspace.resolve``) into parts, each identified by a key that holds
everything deciding its cost and latency: family, channels, stride, input size and parameters.
Per-part costs (params, MACs, memory access, kernels, element-wise work) are counted once on the
meta device (shapes only) and cached in memory and on disk (``block_costs.jsonl``), so the features
of a new genotype cost a resolve and a few dictionary lookups: no network is built.
Two parts whose keys differ but which build the same module on the same input shape (a parameter
that does not change the module, e.g. ``avg_down`` without a shortcut) share a
:func:`part_signature`, so they are profiled and counted once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from predictors.cost import OpCost, op_cost
from predictors.latency.cache import cache_dir
from searchspace.blocks import FAMILIES, BlockArgs
from searchspace.genotype import Genotype
from searchspace.jsonl import JsonlStore
from searchspace.resolve import ResolvedNetwork, resolve, with_scaling
from searchspace.stems import Head, build_stem

COST_FEATURES = ("log_macs", "log_params", "log_mem", "log_elementwise", "kernels", "blocks", "resolution")


@dataclass(frozen=True)
class Part:
    """One independently buildable piece of a network and the input shape it sees (C, H, W)."""

    kind: str  # stem | block | head
    key: str
    in_shape: tuple[int, int, int]
    build: Callable[[], nn.Module]
    group: str  # what the latency correction sums it under: stem, head or the block's family


def _params_text(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def stem_part(stem_type: str, stem: dict, in_ch: int, resolution: int) -> Part:
    return Part("stem", f"stem:{stem_type}:{in_ch}:{resolution}:{_params_text(stem)}", (in_ch, resolution, resolution),
                lambda: build_stem(stem_type, stem, in_ch), "stem")


def block_part(block_type: str, args: BlockArgs, in_size: int) -> Part:
    key = f"block:{block_type}:{args.in_ch}>{args.out}:s{args.stride}:{in_size}:{_params_text(args.params)}"
    return Part("block", key, (args.in_ch, in_size, in_size), lambda: FAMILIES[block_type].build(args),
                block_type)


def head_part(head: dict, in_ch: int, size: int) -> Part:
    classes = head["num_classes"]
    return Part("head", f"head:{in_ch}:{size}:{classes}:{_params_text(head)}", (in_ch, size, size),
                lambda: Head(head, in_ch, classes), "head")


def _attribute_text(value: object) -> str:
    """A module attribute as text: plain values by value, functions by name, anything else by identity."""
    if isinstance(value, (bool, int, float, str, type(None))):
        return repr(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, (bool, int, float, str, type(None))) for v in value):
        return repr(value)
    name = getattr(value, "__qualname__", None)
    if callable(value) and name is not None:
        return f"{getattr(value, '__module__', '')}.{name}"
    return f"{type(value).__qualname__}@{id(value)}"  # unknown: never equal to another module's


def module_signature(module: nn.Module, in_shape: tuple[int, ...]) -> str:
    """A hash of what decides a module's work: its tree of module types, their settings (``extra_repr``),
    plain attributes, parameter and buffer shapes, and the input shape. Equal signatures: same module."""
    digest = hashlib.sha256(repr(tuple(in_shape)).encode())
    for name, m in module.named_modules():
        attrs = sorted((k, _attribute_text(v)) for k, v in vars(m).items() if not k.startswith("_") and k != "training")
        tensors = [(k, tuple(t.shape), str(t.dtype)) for k, t in (*m.named_parameters(recurse=False),
                                                                  *m.named_buffers(recurse=False)) if t is not None]
        cls = type(m)
        digest.update(f"{name}|{cls.__module__}.{cls.__qualname__}|{m.extra_repr()}|{attrs}|{tensors}\n".encode())
    return digest.hexdigest()[:16]


def part_signature(part: Part) -> str:
    """:func:`module_signature` of a part, built on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        module = part.build()
    return module_signature(module, part.in_shape)


def network_parts(genotype: Genotype, resolution: int | None = None, net: ResolvedNetwork | None = None) -> list[Part]:
    """Stem, every block instance and head of ``genotype`` (at ``resolution`` if given)."""
    if net is None:
        net = resolve(with_scaling(genotype, resolution=resolution) if resolution else genotype)
    parts = [stem_part(net.stem_type, net.stem, net.in_channels, net.resolution)]
    parts += [block_part(b.type, b.args, b.in_size) for b in net.blocks]
    parts.append(head_part(net.head, net.final_channels, net.final_size))
    return parts


class CostTable:
    """Per-part costs, counted on the meta device once and cached (memory + ``block_costs.jsonl``)."""

    FILE_NAME = "block_costs.jsonl"

    def __init__(self, path: str | os.PathLike | None = "default") -> None:
        self.store = JsonlStore(cache_dir() / self.FILE_NAME if path == "default" else path)

    def cost(self, part: Part, batch: int = 1) -> OpCost:
        """The part's costs, counted on first use."""
        key = f"{part.key}|b{batch}"
        hit = self.store.get(key)
        if hit is None:
            with torch.device("meta"):
                module = part.build()
            cost = op_cost(module, torch.empty(batch, *part.in_shape, device="meta"))
            self.store.put(key, asdict(cost))
            return cost
        return OpCost(**{k: hit[k] for k in ("params", "macs", "mem_bytes", "kernels", "elementwise")})

    def share(self, part: Part, same_as: str, batch: int = 1) -> None:
        """Record ``part``'s costs as those of the part keyed ``same_as`` (an equal module on an equal
        input shape), or count them if that part's are not known."""
        if f"{part.key}|b{batch}" in self.store:
            return
        hit = self.store.get(f"{same_as}|b{batch}")
        if hit is None:
            self.cost(part, batch)
        else:
            self.store.put(f"{part.key}|b{batch}", {k: v for k, v in hit.items() if k != "key"})


def cost_table() -> CostTable:
    """The process-wide per-part cost cache (one per cache folder, so a changed ``$NAS_CACHE_DIR`` is
    followed)."""
    return _table_in(cache_dir())


@functools.cache
def _table_in(folder: Path) -> CostTable:
    return CostTable(folder / CostTable.FILE_NAME)


def _total(costs: list[OpCost]) -> OpCost:
    return OpCost(*(sum(getattr(c, name) for c in costs) for name in ("params", "macs", "mem_bytes", "kernels",
                                                                        "elementwise")))


def genotype_cost(genotype: Genotype, batch: int = 1, resolution: int | None = None,
                  costs: CostTable | None = None) -> OpCost:
    """Total params, MACs, memory access, kernels and element-wise work, summed over the parts."""
    costs = costs or cost_table()
    return _total([costs.cost(p, batch) for p in network_parts(genotype, resolution)])


def cost_features(genotype: Genotype, batch: int = 1, resolution: int | None = None,
                  costs: CostTable | None = None) -> dict[str, float]:
    """The cost features of :data:`COST_FEATURES` (logs of the large counts)."""
    net = resolve(with_scaling(genotype, resolution=resolution) if resolution else genotype)
    costs = costs or cost_table()
    total = _total([costs.cost(p, batch) for p in network_parts(genotype, net=net)])
    return {
        "log_macs": math.log1p(total.macs),
        "log_params": math.log1p(total.params),
        "log_mem": math.log1p(total.mem_bytes),
        "log_elementwise": math.log1p(total.elementwise),
        "kernels": float(total.kernels),
        "blocks": float(len(net.blocks)),
        "resolution": float(net.resolution),
    }


class FeatureCache:
    """Feature vectors by (genotype hash, batch, resolution, extra key): computed once per process."""

    def __init__(self) -> None:
        self._vectors: dict[tuple, np.ndarray] = {}

    def get(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        vector = self._vectors.get(key)
        if vector is None:
            vector = compute()
            self._vectors[key] = vector
        return vector
