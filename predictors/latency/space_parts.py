"""Every distinct part a search space can produce (``nas latency build-lut`` reports how many of them its table holds)."""

from __future__ import annotations

import itertools

from predictors.latency.parts import Part, block_part, head_part, stem_part
from searchspace.blocks import FAMILIES, BlockArgs
from searchspace.errors import GenotypeError
from searchspace.genotype import parse_block
from searchspace.resolve import resolve
from searchspace.space import Space


def space_parts(space: Space) -> list[Part]:
    """Every distinct part the space can produce (stem, each block instance per stage, head).

    Per stage it walks the reachable (input channels, input size) states, every allowed block type,
    output width and combination of the family's searched values (a csp's with each inner family's),
    for the first block (stage stride) and, when a stage may repeat, for the repeated block (stride 1,
    in == out).
    """
    cfg = space.config
    net = resolve(space.random_genotype(0))
    parts: dict[str, Part] = {}

    def add(part: Part) -> None:
        parts.setdefault(part.key, part)

    add(stem_part(net.stem_type, net.stem, net.in_channels, net.resolution))
    states = {(net.stem["out"], net.stem_size)}
    for i, stage in enumerate(cfg.stages):
        path = f"space.stages[{i}]"
        next_states = set()
        for (in_ch, size), block_type in itertools.product(sorted(states), stage.types):
            family = FAMILIES[block_type]
            outs = [in_ch] if family.keeps_width(stage.stride) else stage.out
            if stage.stride > 1 and size < 2:
                continue
            for out, combo in itertools.product(outs, space.value_combos(block_type)):
                raw = {"type": block_type, "out": out, "stride": stage.stride, **combo}
                try:
                    params = parse_block(raw, path).params
                    first = BlockArgs(in_ch, out, stage.stride, params)
                    family.check(first, path)
                except GenotypeError:
                    continue
                out_size = family.out_size(size, first)
                if out_size < 1:
                    continue
                add(block_part(block_type, first, size))
                if max(stage.repeat) > 1:
                    again = BlockArgs(out, out, 1, params)
                    try:
                        family.check(again, path)
                    except GenotypeError:
                        continue
                    add(block_part(block_type, again, out_size))
                next_states.add((out, out_size))
        states = next_states
    for in_ch, size in sorted(states):
        add(head_part(net.head, in_ch, size))
    return list(parts.values())
