"""Load and save genotypes: a file path (YAML or JSON), YAML/JSON text, or ``zoo:NAME``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from searchspace.errors import GenotypeError, NasError
from searchspace.genotype import Genotype
from searchspace.resolve import parse_genotype

ZOO_DIR = Path(__file__).parent / "zoo"


def zoo_names() -> list[str]:
    """Names of the reference genotypes shipped with the package."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def _read_file(path: Path, shown: str) -> str:
    """The text of a genotype file; unreadable or binary files are user errors (one line)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NasError(f"genotype: {shown!r} is not a UTF-8 text file (expected YAML or JSON)") from None
    except OSError as err:
        raise NasError(f"genotype: cannot read {shown!r}: {err.strerror or err}") from None


def _read_source(source: str | os.PathLike) -> tuple[str, str]:
    """(text, where) for a zoo name, a path or literal YAML/JSON text."""
    text_source = str(source)
    if text_source.startswith("zoo:"):
        name = text_source[4:]
        path = ZOO_DIR / f"{name}.yaml"
        if not path.is_file():
            raise NasError(f"genotype: unknown zoo name {name!r}; available: {', '.join(zoo_names())}")
        return _read_file(path, text_source), text_source
    if isinstance(source, os.PathLike) or ("\n" not in text_source and not text_source.lstrip().startswith("{")):
        path = Path(text_source)
        if not path.is_file():
            raise NasError(f"genotype: no such file {text_source!r} (give a path, YAML text or zoo:NAME)")
        return _read_file(path, text_source), text_source
    return text_source, "<text>"


def load_genotype(source: str | os.PathLike | dict | Genotype) -> Genotype:
    """Load and validate a genotype from a path, YAML/JSON text, ``zoo:NAME`` or plain data."""
    if isinstance(source, Genotype):
        return source
    if isinstance(source, dict):
        return parse_genotype(source)
    text, where = _read_source(source)
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise GenotypeError("", f"{where}: not valid YAML/JSON{at}: {getattr(err, 'problem', err)}") from None
    return parse_genotype(raw)


def genotype_text(genotype: Genotype, fmt: str = "yaml") -> str:
    """The canonical YAML or JSON text of a genotype."""
    data = genotype.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)


def save_genotype(genotype: Genotype, path: str | os.PathLike) -> Path:
    """Write ``genotype`` to ``path`` (JSON when it ends in .json, else YAML); returns the path."""
    path = Path(path)
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(genotype_text(genotype, fmt))
    tmp.replace(path)
    return path
