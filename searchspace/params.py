"""Declarations of block parameters: read by the validator, the sampler and the builder.

A block family lists its parameters once as :class:`Param` objects. ``Param.check`` turns a raw
YAML value into a typed one (or raises :class:`GenotypeError` naming the field and what is
allowed); ``Param.search`` is the default set of values a search space samples from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from searchspace.errors import GenotypeError

MAX_CHANNELS = 16384    # the widest layer any channel field may ask for (before the width multiplier)
MAX_CLASSES = 1_000_000  # classifier outputs


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fmt_choices(choices: tuple[Any, ...]) -> str:
    return ", ".join(_fmt(c) for c in choices)


@dataclass(frozen=True)
class Param:
    """One parameter of a block, stem or head.

    kind: ``int``, ``float``, ``bool`` or ``str``. ``choices`` restricts the value to a set;
    ``low``/``high`` bound numbers (inclusive). ``nullable`` admits ``null`` (meaning "derive it").
    ``search`` lists the values the default search space samples (None: not searched by default).
    ``omit_default`` leaves the parameter out of the canonical form while it holds its default, so a
    parameter added after genotypes were saved keeps their canonical form and hash unchanged.
    """

    name: str
    kind: type
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    nullable: bool = False
    search: tuple[Any, ...] | None = None
    omit_default: bool = False

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.choices is not None:
            text = f"one of {fmt_choices(self.choices)}"
        elif self.kind is bool:
            text = "true or false"
        elif self.low is not None and self.high is not None:
            text = f"a{'n integer' if self.kind is int else ' number'} from {_fmt(self.low)} to {_fmt(self.high)}"
        elif self.low is not None:
            text = f"a{'n integer' if self.kind is int else ' number'} >= {_fmt(self.low)}"
        else:
            text = {int: "an integer", float: "a number", str: "a string"}[self.kind]
        return text + (" or null" if self.nullable else "")

    def check(self, value: Any, path: str) -> Any:
        """Return ``value`` converted to this parameter's type, or raise GenotypeError."""
        if value is None:
            if self.nullable:
                return None
            raise GenotypeError(path, f"null is not allowed; expected {self.allowed()}")
        value = self._convert(value, path)
        if self.choices is not None and value not in self.choices:
            raise GenotypeError(path, f"{_fmt(value)} is not one of {fmt_choices(self.choices)}")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise GenotypeError(path, f"{_fmt(value)} is out of range; expected {self.allowed()}")
        return value

    def _convert(self, value: Any, path: str) -> Any:
        bad = GenotypeError(path, f"{_fmt(value)} ({type(value).__name__}) is not {self.allowed()}")
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            raise bad
        if isinstance(value, bool):
            raise bad
        if self.kind is int:
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad
        if self.kind is float:
            if isinstance(value, (int, float)) and math.isfinite(value):
                return float(value)
            raise bad
        if self.kind is str:
            if isinstance(value, str):
                return value
            raise bad
        raise TypeError(f"unsupported parameter kind {self.kind}")


def check_mapping(raw: Any, path: str) -> dict:
    """Raise GenotypeError unless ``raw`` is a mapping."""
    if not isinstance(raw, dict):
        raise GenotypeError(path, f"expected a mapping, got {type(raw).__name__}")
    return raw


def check_params(raw: dict, params: tuple[Param, ...], path: str, reserved: tuple[str, ...] = ()) -> dict:
    """Validate the keys of ``raw`` against ``params``; fill defaults; reject unknown keys.

    ``reserved`` names keys that the caller validates itself (they are skipped here).
    """
    known = {p.name: p for p in params}
    for key in raw:
        if key not in known and key not in reserved:
            allowed = ", ".join(list(reserved) + list(known))
            raise GenotypeError(f"{path}.{key}" if path else str(key), f"unknown field; allowed fields are {allowed}")
    out = {}
    for p in params:
        sub = f"{path}.{p.name}" if path else p.name
        out[p.name] = p.check(raw[p.name], sub) if p.name in raw else p.default
    return out


def canonical_params(values: dict, params: tuple[Param, ...]) -> dict:
    """``values`` without the ``omit_default`` parameters that hold their default (the canonical form)."""
    omitted = {p.name for p in params if p.omit_default and values.get(p.name, p.default) == p.default}
    return {k: v for k, v in values.items() if k not in omitted}
