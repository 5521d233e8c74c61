"""``nas zoo``: the reference genotypes shipped with the package, with params and MACs."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="list the reference networks (params, MACs)",
                       description="List the reference genotypes (use them as zoo:NAME).")
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    p.add_argument("--no-macs", action="store_true", help="skip counting MACs (faster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from predictors.cost import count_params, params_and_macs
    from searchspace import build, load_genotype, zoo_names

    table = Table("name", "params", "MACs", "resolution", "hash", title="nas reference zoo")
    for name in zoo_names():
        genotype = load_genotype(f"zoo:{name}")
        params, macs = (count_params(build(genotype)), None) if args.no_macs else params_and_macs(genotype)
        row = {"name": name, "params": params, "macs": macs, "resolution": genotype.resolution,
               "hash": genotype.hash()}
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            table.add_row(name, f"{params:,}", "-" if macs is None else f"{macs / 1e6:,.1f}M",
                          str(genotype.resolution), row["hash"])
    if not args.json:
        Console().print(table)
    return 0
