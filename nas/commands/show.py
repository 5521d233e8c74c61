"""``nas show GENOTYPE``: the stage table of a genotype (blocks, channels, strides, sizes) and totals."""

from __future__ import annotations

import argparse
import json


def add_scaling_arguments(p: argparse.ArgumentParser) -> None:
    """--width/--depth/--resolution/--num-classes, shared by commands that build a genotype."""
    p.add_argument("--width", type=float, help="replace the width multiplier")
    p.add_argument("--depth", type=float, help="replace the depth multiplier")
    p.add_argument("--resolution", type=int, help="replace the input resolution")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the genotype's)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="show a genotype's stage table and totals",
                       description="Show a genotype (path, YAML text or zoo:NAME): per stage the block "
                                   "types, repeats, channels, strides and output sizes; params and MACs.")
    p.add_argument("genotype", help="genotype file, YAML text or zoo:NAME")
    add_scaling_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def load_scaled(args: argparse.Namespace):
    """The genotype named on the command line with the scaling flags applied (validated)."""
    from searchspace import load_genotype, parse_genotype, with_scaling

    genotype = load_genotype(args.genotype)
    if args.num_classes is not None:  # a changed head field: validated like a file's
        genotype = parse_genotype({**genotype.to_dict(), "head": {**genotype.head, "num_classes": args.num_classes}})
    return with_scaling(genotype, args.width, args.depth, args.resolution)


def run(args: argparse.Namespace) -> int:
    from nas.search.stage_table import genotype_summary, print_summary

    summary = genotype_summary(load_scaled(args))
    if args.json:
        print(json.dumps(summary))
        return 0
    print_summary(summary)
    return 0
