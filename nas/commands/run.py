"""``nas run``: search, train the winner, export it, verify the export and write a model card, in one run folder."""

from __future__ import annotations

import argparse
import shlex

from nas.commands.flags import add_flags, flag_values, flag_words
from nas.config import SearchConfig
from nas.pipeline.config import PREFIXED, REDO_STEPS, run_flag, train_keys
from predictors.training.recipe import TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="from a latency target to a verified ONNX model and its model card, in one command",
        description="Search for the best network within the target (the search's options), train the winner with "
                    "the full recipe (the training's options: --epochs, --lr, ...; --train-seed and "
                    "--train-workers where the search has the key too), export it to ONNX with its trained weights "
                    "and its preprocessing in the file's metadata, verify the file in onnxruntime (test accuracy "
                    "within 0.1 point of PyTorch's, else exit status 1; latency beside PyTorch's under the search's "
                    "conditions) and write card.md, all in RUNS_DIR/NAME/. --resume continues the step that was "
                    "running and keeps the finished ones (with no other flag it uses the run's saved settings). "
                    "See docs/run.md.")
    p.add_argument("--config", help="search config YAML (keys as below; proxy settings under proxy:, the search "
                                    "space under space:)")
    p.add_argument("--data", default=None, metavar="NAME|DIR",
                   help="data of the search and the training: fashion-mnist, mnist, cifar10, cifar100, synthetic, "
                        "or the folder of an ImageFolder tree (DIR/train/<class>/ and DIR/test/<class>/)")
    p.add_argument("--data-dir", dest="proxy.data_dir", default=None, metavar="DIR",
                   help="folder of a named data set (same as --proxy-data-dir)")
    p.add_argument("--redo", choices=REDO_STEPS, default=None,
                   help="with --resume: run this step and the ones after it again (export: a new model.onnx)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_flags(p, SearchConfig)
    add_flags(p, TrainConfig, only=[k for k in train_keys() if k not in PREFIXED], dest_prefix="train.",
              flag=run_flag)
    add_flags(p, TrainConfig, only=list(PREFIXED), dest_prefix="train.", flag=run_flag)
    p.set_defaults(func=run, on_interrupt="continue it with nas run --name NAME --resume (the command printed at "
                                          "the start; finished steps are kept)")


def train_values(args: argparse.Namespace) -> dict[str, str]:
    """The training keys given on the command line."""
    return {k[len("train."):]: v for k, v in vars(args).items() if k.startswith("train.") and v is not None}


def command_line(args: argparse.Namespace) -> str:
    """The command as given (the flags that were set), for the run's state and its card."""
    words = ["nas", "run"]
    for flag, value in (("--config", args.config), ("--data", args.data), ("--redo", args.redo)):
        words += [flag, value] if value is not None else []
    words += flag_words(args, SearchConfig) + flag_words(args, TrainConfig, "train.", run_flag)
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    from nas.pipeline.run import run as run_pipeline

    if getattr(args, "name", None):  # the stop hint names this run
        args.on_interrupt = f"continue it with nas run --name {args.name} --resume (finished steps are kept)"
    result = run_pipeline(args.config, train=train_values(args), data=args.data, redo=args.redo, quiet=args.quiet,
                          command=command_line(args), **flag_values(args, SearchConfig))
    print(f"nas run: {result.message}", flush=True)
    return 0 if result.ok else 1
