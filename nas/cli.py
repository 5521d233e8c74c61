"""The ``nas`` command line. Each sub-command lives in ``nas/commands/<name>.py``.

A command module defines ``register(subparsers)``, which adds its parser and sets ``func`` to a
function ``(args) -> int``. Heavy imports (optuna, ray, onnx) happen inside those functions so that
``nas --help`` stays fast. User errors (:class:`searchspace.NasError`) print one line and exit 2; a storage
failure (:class:`searchspace.errors.StorageFailure`) prints one line and exits 1. SIGTERM is Ctrl-C for every
command (:mod:`nas.common.signals`): the command writes what it has, and the exit status is 143 (130 for
Ctrl-C). A command may set ``on_interrupt`` (what the user can do next) with its parser defaults.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from nas.common.failures import SPACE, storage_failure
from nas.common.signals import exit_code, sigterm_as_interrupt, stop_name
from searchspace.errors import NasError, StorageFailure

COMMAND_MODULES = ("zoo", "show", "run", "search", "audit", "train", "latency", "export", "import_timm", "scale")


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
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command (``args.func``) with SIGTERM handled as Ctrl-C; its exit status."""
    try:
        with sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except NasError as err:
        print(f"nas {args.command}: error: {err}", file=sys.stderr)
        return 2
    except StorageFailure as err:
        print(f"nas {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        then = getattr(args, "on_interrupt", None)
        print(f"nas {args.command}: stopped by {stop_name(stop)}" + (f"; {then}" if then else ""), file=sys.stderr)
        return exit_code(stop)
    except BrokenPipeError:  # e.g. `nas zoo --json | head`: the reader went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # a full disk under any command: one line too
        failure = storage_failure(err, kinds=SPACE)
        if failure is None:
            raise
        print(f"nas {args.command}: {failure}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
