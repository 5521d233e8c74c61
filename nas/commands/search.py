"""``nas search``: run a latency-aware architecture search (flags override the config file)."""

from __future__ import annotations

import argparse
import dataclasses

from nas.config import HELP, SearchConfig
from predictors.proxy import ProxyConfig

PROXY_HELP = {
    "dataset": "proxy dataset: fashion-mnist (default), cifar10, cifar100, imagefolder, synthetic",
    "data_dir": "dataset folder (default for fashion-mnist: /usr/share/datasets/fashion-mnist)",
    "resolution": "proxy training resolution",
    "width": "proxy width multiplier",
    "epochs": "proxy training epochs per candidate",
    "subset": "training images per candidate",
    "val_subset": "validation images",
    "batch_size": "batch size",
    "lr": "learning rate",
    "seed": "seed of data order and initialisation",
    "threads": "torch threads for proxy training (default: all)",
    "device": "cpu or cuda",
    "val_fraction": "hold-out fraction of the training split for validation (0: use the test split)",
    "optimizer": "sgd (Nesterov) or adamw",
    "weight_decay": "weight decay (not on norms and biases)",
    "label_smoothing": "label smoothing",
    "channels_last": "NHWC memory format",
    "bn_images": "training images used to re-estimate BatchNorm statistics before evaluation",
    "download": "download the dataset if missing (fashion-mnist, cifar10/100)",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search", help="search for the best network under a latency (or MACs) target",
        description="Search the block space with proxy training and a latency-aware reward. Every config "
                    "key can be set in --config YAML or by its flag; flags win. Outputs go to runs/NAME/: "
                    "best.yaml, trials.csv, pareto.csv, pareto.png, report.md.")
    p.add_argument("--config", help="search config YAML (keys as below; proxy settings under proxy:, the "
                                    "search space under space:)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    defaults = SearchConfig()
    for f in dataclasses.fields(SearchConfig):
        if f.name in ("proxy", "space"):
            continue
        if f.name == "resume":
            p.add_argument("--resume", action="store_const", const=True, default=None, help=HELP["resume"])
            continue
        p.add_argument(_flag(f.name), dest=f.name, default=None, metavar=f.name.upper().replace("_", "-"),
                       help=f"{HELP[f.name]} (default: {getattr(defaults, f.name)})")
    for f in dataclasses.fields(ProxyConfig):
        p.add_argument(_flag("proxy_" + f.name), dest="proxy." + f.name, default=None,
                       metavar=f.name.upper().replace("_", "-"),
                       help=f"{PROXY_HELP.get(f.name, 'proxy training setting')} (default: {getattr(ProxyConfig(), f.name)})")
    p.add_argument("--data", dest="proxy.data_dir", default=None, metavar="DIR",
                   help="dataset folder (same as --proxy-data-dir)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.config import load_config
    from nas.runner import search

    skip = {"config", "quiet", "func", "command"}
    overrides = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    config = load_config(args.config, overrides)
    summary = search(config, quiet=args.quiet)
    return 0 if summary.best_path is not None else 1
