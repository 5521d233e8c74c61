"""Load and save genotypes: a file path (YAML or JSON), YAML/JSON text, or ``zoo:NAME``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from searchspace.errors import NasError
from searchspace.genotype import Genotype
from searchspace.resolve import parse_genotype
from searchspace.textio import (
    check_depth,
    check_output_file,
    is_file,
    load_yaml,
    read_text,
    shorten,
    write_text_atomic,
)

ZOO_DIR = Path(__file__).parent / "zoo"


def zoo_names() -> list[str]:
    """Names of the reference genotypes shipped with the package."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def _read_source(source: str | os.PathLike) -> tuple[str, str]:
    """(text, where) for a zoo name, a path or literal YAML/JSON text."""
    text_source = str(source)
    if text_source.startswith("zoo:"):
        name = text_source[4:]
        path = ZOO_DIR / f"{name}.yaml"
        if not is_file(path):
            raise NasError(f"genotype: unknown zoo name {name!r}; available: {', '.join(zoo_names())}")
        return read_text(path, "genotype", expected="YAML or JSON"), text_source
    if isinstance(source, os.PathLike) or ("\n" not in text_source and not text_source.lstrip().startswith(("{", "["))):
        path = Path(text_source)
        if not is_file(path):
            raise NasError(f"genotype: no such file {shorten(text_source)!r} (give a path, YAML text or zoo:NAME)")
        return read_text(path, "genotype", expected="YAML or JSON"), text_source
    return text_source, "<text>"


def load_genotype(source: str | os.PathLike | dict | Genotype) -> Genotype:
    """Load and validate a genotype from a path, YAML/JSON text, ``zoo:NAME`` or plain data."""
    if isinstance(source, Genotype):
        return source
    if isinstance(source, dict):
        check_depth(source, "genotype")
        return parse_genotype(source)
    text, where = _read_source(source)
    return parse_genotype(load_yaml(text, where))


def genotype_text(genotype: Genotype, fmt: str = "yaml") -> str:
    """The canonical YAML or JSON text of a genotype."""
    data = genotype.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)


def save_genotype(genotype: Genotype, path: str | os.PathLike) -> Path:
    """Write ``genotype`` to ``path`` (JSON when it ends in .json, else YAML); returns the path."""
    path = check_output_file(path, "genotype file")
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    return write_text_atomic(path, genotype_text(genotype, fmt))
