"""Settings declared once: a dataclass field carries everything about one configuration key.

A config class (``SearchConfig``, ``ProxyConfig``) declares each key as one field::

    epochs: int = setting(3, "proxy training epochs per candidate", low=1, high=1000)

The field's name and type annotation, and the ``setting`` arguments (default, help, allowed values or
range, a unit parser, whether the key decides a run's outcome), are the only place that key is
written. :func:`declared` turns the fields into :class:`searchspace.params.Param` objects, which
validate YAML values and command-line text alike, and which a CLI reads to generate flags and
``--help``. A field whose type is another config class (``proxy: ProxyConfig``) is a nested section.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from searchspace.errors import GenotypeError
from searchspace.params import Param

META = "setting"
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
NULL_WORDS = ("none", "null")


@dataclass(frozen=True)
class SettingInfo:
    """What a field declares besides its name and type."""

    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    parse: Callable[[Any, str], Any] | None = None  # text with a unit -> number, before the checks
    in_hash: bool = True                            # False: where/how long a run goes, not what it finds
    example: str | None = None                      # shown as the flag's value name in --help


def setting(default: Any, doc: str, *, choices: tuple[Any, ...] | None = None, low: float | None = None,
            high: float | None = None, parse: Callable[[Any, str], Any] | None = None, in_hash: bool = True,
            example: str | None = None) -> Any:
    """A dataclass field declaring one configuration key (see the module docstring)."""
    info = SettingInfo(default, doc, choices, low, high, parse, in_hash, example)
    return dataclasses.field(default=default, metadata={META: info})


def section(factory: Callable[[], Any], doc: str, *, in_hash: bool = True) -> Any:
    """A dataclass field holding a nested config class (e.g. ``proxy:``) or a free mapping (``space:``)."""
    return dataclasses.field(default_factory=factory, metadata={META: SettingInfo(None, doc, in_hash=in_hash)})


@dataclass(frozen=True)
class Declared:
    """One declared key: its validator and the rest of its declaration."""

    param: Param
    info: SettingInfo

    @property
    def name(self) -> str:
        return self.param.name


def _kind(annotation: Any) -> tuple[Any, bool]:
    """(type, nullable) of an annotation such as ``int | None`` or ``ProxyConfig``."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return kinds[0], len(kinds) < len(args)
    return (typing.get_origin(annotation) or annotation), False


def declared(cls: type) -> dict[str, Declared]:
    """The declared keys of a config class, in field order (nested sections included as such)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Declared] = {}
    for f in dataclasses.fields(cls):
        info = f.metadata.get(META)
        if info is None:
            continue
        kind, nullable = _kind(hints[f.name])
        if kind in (int, float, bool, str):
            param = Param(f.name, kind, info.default, info.doc, choices=info.choices, low=info.low,
                          high=info.high, nullable=nullable)
        else:
            param = Param(f.name, kind, None, info.doc)  # a section: a config class or a free mapping
        out[f.name] = Declared(param, info)
    return out


def flag_name(key: str) -> str:
    """A key's command-line flag: ``proxy.epochs`` -> ``--proxy-epochs``."""
    return "--" + key.replace(".", "-").replace("_", "-")


def is_section(key: Declared) -> bool:
    return key.param.kind not in (int, float, bool, str)


def from_text(key: Declared, value: Any, path: str) -> Any:
    """A YAML value or command-line text converted to the key's type and checked; GenotypeError if bad."""
    p = key.param
    if isinstance(value, str) and value.strip().lower() in NULL_WORDS and p.nullable:
        return None
    if key.info.parse is not None and value is not None:
        value = key.info.parse(value, path)
    elif isinstance(value, str) and p.kind is not str:
        value = _parse_word(value.strip(), p, path)
    return p.check(value, path)


def _parse_word(text: str, p: Param, path: str) -> Any:
    if p.kind is bool:
        if text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise GenotypeError(path, f"{text!r} is not {p.allowed()}")
    try:
        number = float(text)
    except ValueError:
        raise GenotypeError(path, f"{text!r} is not {p.allowed()}") from None
    return int(number) if p.kind is int and number.is_integer() else number


def apply_settings(target: Any, values: dict, prefix: str = "") -> None:
    """Set ``target``'s declared keys from a mapping (YAML or flags), validating each; nested sections recurse.

    Keys may be spelled with ``-`` or ``_``. An unknown key raises GenotypeError listing the allowed ones.
    """
    keys = declared(type(target))
    for raw_key, value in values.items():
        path = f"{prefix}{raw_key}"
        name = str(raw_key).replace("-", "_")
        if name not in keys:
            raise GenotypeError(path, f"unknown key; allowed keys are {', '.join(keys)}")
        key = keys[name]
        if not is_section(key):
            setattr(target, name, from_text(key, value, path))
        elif not isinstance(value, dict):
            raise GenotypeError(path, "expected a mapping")
        elif dataclasses.is_dataclass(key.param.kind):
            apply_settings(getattr(target, name), value, f"{path}.")
        else:
            setattr(target, name, value)


def hashed_dict(config: Any) -> dict:
    """The keys that decide what a run finds (``in_hash``), nested sections included, as plain data."""
    out = {}
    for name, key in declared(type(config)).items():
        if not key.info.in_hash:
            continue
        value = getattr(config, name)
        out[name] = hashed_dict(value) if dataclasses.is_dataclass(value) else value
    return out


def validate_settings(config: Any, prefix: str = "") -> None:
    """Check every declared key's current value (a config built in Python skips the YAML/flag checks)."""
    for name, key in declared(type(config)).items():
        value = getattr(config, name)
        if not is_section(key):
            setattr(config, name, key.param.check(value, f"{prefix}{name}"))
        elif dataclasses.is_dataclass(value):
            validate_settings(value, f"{prefix}{name}.")
