"""Command-line flags generated from declared settings (one declaration per key, see searchspace.settings).

``--key-name VALUE`` for every key of a config class, ``--SECTION-key-name`` for a nested section's
keys (``--proxy-epochs``), a bare switch for booleans that default to false. Values stay text here;
:func:`nas.config.load_config` validates them against the same declaration, so errors name the key.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable

from searchspace.params import fmt_choices
from searchspace.settings import Declared, declared, flag_name, is_section

__all__ = ["add_flags", "flag_error", "flag_name", "flag_values", "flag_words", "help_text", "value_name"]


def help_text(key: Declared) -> str:
    """The key's help and its default (allowed values show in the flag's value name)."""
    default = key.param.default
    return key.param.doc if default is None else f"{key.param.doc} (default: {fmt_choices((default,))})"


def value_name(name: str, key: Declared) -> str:
    """``{a,b,c}`` for a choice, the declared example, or the key's name in capitals."""
    if key.param.choices is not None:
        return "{" + ",".join(fmt_choices((c,)) for c in key.param.choices) + "}"
    return key.info.example or name.upper().replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, cls: type, only: Iterable[str] | None = None,
              prefix: str = "", dest_prefix: str = "", flag: Callable[[str], str] = flag_name) -> None:
    """Add a flag for each declared key of ``cls`` (``only``: these keys, dotted inside sections, or a
    section's name for all of its keys). ``dest_prefix`` starts each value's name in the parsed arguments;
    ``flag`` spells a dotted key's flag."""
    wanted = set(only) if only is not None else None  # full dotted names, also inside sections
    for name, key in declared(cls).items():
        dotted = prefix + name
        if is_section(key):
            if dataclasses.is_dataclass(key.param.kind):
                inner = None if wanted is None or dotted in wanted else wanted
                add_flags(parser, key.param.kind, inner, f"{dotted}.", dest_prefix, flag)
            continue
        if wanted is not None and dotted not in wanted:
            continue
        dest = dest_prefix + dotted
        if key.param.kind is bool and key.param.default is False:
            parser.add_argument(flag(dotted), dest=dest, action="store_const", const="true", default=None,
                                help=key.param.doc)
            continue
        parser.add_argument(flag(dotted), dest=dest, default=None, metavar=value_name(name, key),
                            help=help_text(key))


def flag_values(args: argparse.Namespace, cls: type) -> dict[str, str]:
    """The declared keys given on the command line, as ``{dotted key: text}`` for load_config."""
    names = set(_dotted(cls))
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def flag_words(args: argparse.Namespace, cls: type, dest_prefix: str = "",
               flag: Callable[[str], str] = flag_name) -> list[str]:
    """The flags of ``cls``'s keys given on the command line, as words of a command line (switches bare)."""
    words = []
    for dotted in _dotted(cls):
        value = getattr(args, dest_prefix + dotted, None)
        if value is None:
            continue
        switch = _declared_at(cls, dotted).param.default is False and value == "true"
        words += [flag(dotted)] if switch else [flag(dotted), str(value)]
    return words


def _declared_at(cls: type, dotted: str) -> Declared:
    section, dot, rest = dotted.partition(".")
    return _declared_at(declared(cls)[section].param.kind, rest) if dot else declared(cls)[dotted]


def _dotted(cls: type, prefix: str = "") -> list[str]:
    out = []
    for name, key in declared(cls).items():
        if is_section(key) and dataclasses.is_dataclass(key.param.kind):
            out += _dotted(key.param.kind, f"{prefix}{name}.")
        elif not is_section(key):
            out.append(prefix + name)
    return out


def flag_error(err: Exception, keys: Iterable[str]) -> Exception:
    """A library error names a key (``backend: ...``); on the command line it is a flag (``--backend: ...``)."""
    text = str(err)
    for key in keys:
        if text.startswith((f"{key}:", f"{key} ")):
            return type(err)("--" + key.replace("_", "-") + text[len(key):])
    return err
