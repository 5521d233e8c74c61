"""Registry of block families: adding a family = one new file + one line here."""

from __future__ import annotations

from searchspace.blocks import basic, bottleneck, ghost, mbconv, osa, shuffle, split_attention
from searchspace.blocks.base import BlockArgs, BlockFamily

FAMILIES: dict[str, BlockFamily] = {
    family.name: family
    for family in (
        mbconv.FAMILY,
        basic.FAMILY,
        bottleneck.FAMILY,
        split_attention.FAMILY,
        shuffle.FAMILY,
        ghost.FAMILY,
        osa.FAMILY,
    )
}


def get_family(name: str) -> BlockFamily:
    """The family registered under ``name`` (KeyError if unknown)."""
    return FAMILIES[name]


__all__ = ["FAMILIES", "BlockArgs", "BlockFamily", "get_family"]
