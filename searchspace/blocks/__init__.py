"""Registry of block families: adding a family = one new file + one line here."""

from __future__ import annotations

from searchspace.blocks import (
    basic,
    bottleneck,
    csp,
    darknet,
    dense,
    eesp,
    fire,
    ghost,
    ibn,
    inception,
    mbconv,
    octave,
    osa,
    plain,
    preact,
    shuffle,
    shuffle_v1,
    split_attention,
    transformer,
    xception,
)
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
        xception.FAMILY,
        fire.FAMILY,
        plain.FAMILY,
        shuffle_v1.FAMILY,
        dense.FAMILY,
        csp.FAMILY,
        darknet.FAMILY,
        preact.FAMILY,
        ibn.FAMILY,
        transformer.FAMILY,
        inception.FAMILY,
        octave.FAMILY,
        eesp.FAMILY,
    )
}


def get_family(name: str) -> BlockFamily:
    """The family registered under ``name`` (KeyError if unknown)."""
    return FAMILIES[name]


__all__ = ["FAMILIES", "BlockArgs", "BlockFamily", "get_family"]
