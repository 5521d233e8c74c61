"""Registry of block families: adding a family = one new file + one line here."""

from __future__ import annotations

from searchspace.blocks import mbconv
from searchspace.blocks.base import BlockArgs, BlockFamily

FAMILIES: dict[str, BlockFamily] = {
    family.name: family
    for family in (
        mbconv.FAMILY,
    )
}


def get_family(name: str) -> BlockFamily:
    """The family registered under ``name`` (KeyError if unknown)."""
    return FAMILIES[name]


__all__ = ["FAMILIES", "BlockArgs", "BlockFamily", "get_family"]
