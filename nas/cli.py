"""The ``nas`` command line. Each sub-command lives in ``nas/commands/<name>.py``.

A command module defines ``register(subparsers)``, which adds its parser and sets ``func`` to a
function ``(args) -> int``. Heavy imports (optuna, ray, onnx) happen inside those functions so that
``nas --help`` stays fast. User errors (:class:`searchspace.NasError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from searchspace.errors import NasError

COMMAND_MODULES = ("zoo", "show", "search", "audit", "train", "latency", "export", "import_timm", "scale")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Latency-aware neural architecture search.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"nas.commands.{name}").register(sub)
    return parser


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the terminal as ``nas: warning: MESSAGE`` (no source line)."""
    return f"nas: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nas`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = one_line_warning
    try:
        return int(args.func(args) or 0)
    except NasError as err:
        print(f"nas {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `nas zoo --json | head`: the reader went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
