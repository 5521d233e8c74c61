"""``nas search``: run a latency-aware architecture search (flags override the config file)."""

from __future__ import annotations

import argparse

from nas.commands.flags import add_flags, flag_values
from nas.config import SearchConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search", help="search for the best network under a latency (or MACs) target",
        description="Search the block space with proxy training and a latency-aware reward. Every config "
                    "key can be set in --config YAML or by its flag; flags win. Outputs go to runs/NAME/: "
                    "best.yaml, trials.csv, pareto.csv, pareto.png, report.md.")
    p.add_argument("--config", help="search config YAML (keys as below; proxy settings under proxy:, the "
                                    "search space under space:)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_flags(p, SearchConfig)
    p.add_argument("--data", dest="proxy.data_dir", default=None, metavar="DIR",
                   help="dataset folder (same as --proxy-data-dir)")
    p.set_defaults(func=run, on_interrupt="continue with --resume (finished trials are kept)")


def run(args: argparse.Namespace) -> int:
    from nas.config import load_config
    from nas.search.run import search

    config = load_config(args.config, flag_values(args, SearchConfig))
    summary = search(config, quiet=args.quiet)
    return 0 if summary.best_path is not None else 1
