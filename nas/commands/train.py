"""``nas train GENOTYPE``: train a genotype for real, with checkpoints, a test accuracy and resume."""

from __future__ import annotations

import argparse
import json

from nas.commands.flags import add_flags, flag_values
from predictors.training.recipe import TrainConfig, train_flag_keys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a genotype for real (checkpoints, test accuracy, --resume)",
        description="Train a genotype (path, YAML text or zoo:NAME) with a standard recipe: SGD Nesterov or "
                    "AdamW, warm-up + cosine, label smoothing, no weight decay on norms and biases, random crop "
                    "with padding (+ horizontal flip for RGB data). The best epoch on a held-out validation split "
                    "is kept; the test split is used once, at the end. A genotype made for another number of "
                    "classes (a zoo network's 1000) gets a new classifier for the data's, as timm's num_classes=N; "
                    "one line says so. Writes --out: best.pt, last.pt, "
                    "metrics.csv, curves.png, result.json, genotype.yaml (the network as trained). "
                    "See docs/train.md.")
    p.add_argument("genotype", help="genotype file, YAML text or zoo:NAME")
    p.add_argument("--data", default=None, metavar="NAME|DIR",
                   help="fashion-mnist, mnist, cifar10, cifar100, synthetic, or the folder of an ImageFolder tree "
                        "(DIR/train/<class>/ and DIR/test/<class>/ or DIR/val/<class>/), read from disk")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no line per epoch (notes stay)")
    p.add_argument("--json", action="store_true", help="print the result (result.json) as one JSON object")
    add_flags(p, TrainConfig, only=train_flag_keys())
    p.set_defaults(func=run, on_interrupt="continue with --resume (finished epochs are kept)")


def run(args: argparse.Namespace) -> int:
    from nas.training.progress import TrainProgress
    from nas.training.run import train

    settings = flag_values(args, TrainConfig)
    if args.data is not None:
        settings["data"] = args.data
    progress = TrainProgress(quiet=args.quiet)  # quiet: notes only (a classifier replaced for the data)
    try:
        result = train(args.genotype, progress=progress, **settings)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"test accuracy {result.test_accuracy:.4f} (best validation {result.best_val_accuracy:.4f} at epoch "
          f"{result.best_epoch}/{result.epochs}), {result.params:,} params, {result.macs / 1e6:.1f}M MACs at "
          f"{result.resolution} px, {result.train_seconds:.0f} s of training; wrote {result.out}/")
    print(f"export: nas export {result.out}/genotype.yaml --weights {result.out}/best.pt --format onnx -o model.onnx")
    return 0
