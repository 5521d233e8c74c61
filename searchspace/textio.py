"""Reading what a user hands us and writing what we hand back, safely and with one-line errors.

Every file or text a user gives (a genotype, a config, an arch_def, a measurements CSV) goes through
these helpers, so no input can crash a command with a traceback or make it recurse or allocate without
bound: files must be UTF-8 text of a sane size; YAML/JSON may nest at most :data:`MAX_DEPTH` levels,
expand (through YAML aliases) to at most :data:`MAX_NODES` values and repeat no mapping key. Outputs
are checked before any work (:func:`check_output_file`) and written atomically under a unique
temporary name (:func:`atomic_file`), so two writers never see each other's half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from searchspace.errors import GenotypeError, NasError

MAX_DEPTH = 32               # a genotype nests 5 levels, a search config about 6
MAX_NODES = 100_000          # values after YAML aliases are expanded (a genotype has a few hundred)
MAX_TEXT_BYTES = 16 * 2**20  # a genotype or config file is a few kB
MERGE_TAG = "tag:yaml.org,2002:merge"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def is_file(path: str | os.PathLike) -> bool:
    """``Path(path).is_file()``, but False instead of an error for a name the OS cannot look up (too
    long, a NUL byte): such a name is text, not a file."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def shorten(text: str, limit: int = 80) -> str:
    """``text`` for an error message: cut to ``limit`` characters with "..." when longer."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_text(path: str | os.PathLike, what: str, expected: str = "", max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a file; NasError naming ``what`` and the path if it is missing, a directory,
    unreadable, larger than ``max_bytes`` or not UTF-8 (``expected``, e.g. "YAML or JSON", is named then)."""
    shown = str(path)
    hint = f" (expected {expected})" if expected else ""
    try:
        size = os.stat(path).st_size
        if Path(path).is_dir():
            raise NasError(f"{what}: {shown!r} is a directory, not a file")
        if size > max_bytes:
            raise NasError(f"{what}: {shown!r} is {size / 2**20:.1f} MiB, more than a text file may be "
                           f"({max_bytes / 2**20:.0f} MiB){hint}")
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise NasError(f"{what}: {shown!r} is not a UTF-8 text file{hint}") from None
    except FileNotFoundError:
        raise NasError(f"{what}: no such file {shown!r}") from None
    except OSError as err:
        raise NasError(f"{what}: cannot read {shown!r}: {err.strerror or err}") from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses to compose a node deeper than :data:`MAX_DEPTH`."""

    depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_yaml(text: str, where: str) -> Any:
    """Plain data from YAML (or JSON) text; GenotypeError ``"WHERE: not valid YAML/JSON at line L, ..."``.

    Refuses nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_NODES` values once aliases
    are expanded (a "billion laughs" file), a structure that contains itself, and duplicate keys.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_node(node, where, {}, set())
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise GenotypeError("", f"{where}: not valid YAML/JSON{at}: {getattr(err, 'problem', None) or err}") from None
    finally:
        loader.dispose()


def _check_node(node: Node, where: str, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """The number of values under ``node`` with aliases expanded; NasError on duplicate keys, cycles
    or more than MAX_NODES values. ``sizes`` memoises shared (aliased) nodes."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise GenotypeError("", f"{where}: a value contains itself through an alias ({_at(node)})")
    open_nodes.add(id(node))
    total = 1
    if isinstance(node, SequenceNode):
        children = node.value
    elif isinstance(node, MappingNode):
        seen = set()
        for key, _ in node.value:
            if isinstance(key, ScalarNode) and key.tag != MERGE_TAG:
                if (key.tag, key.value) in seen:
                    raise GenotypeError("", f"{where}: duplicate key {key.value!r} ({_at(key)})")
                seen.add((key.tag, key.value))
        children = [child for pair in node.value for child in pair]
    else:
        children = []
    for child in children:
        total += _check_node(child, where, sizes, open_nodes)
        if total > MAX_NODES:
            raise GenotypeError("", f"{where}: more than {MAX_NODES:,} values once YAML aliases are expanded ({_at(node)})")
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total


def _at(node: Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def load_json(text: str, where: str) -> Any:
    """Plain data from JSON text. Invalid JSON raises ``json.JSONDecodeError`` (a ValueError, for
    callers that try another syntax next); nesting deeper than MAX_DEPTH raises NasError."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise NasError(f"{where}: nested more than {MAX_DEPTH} levels deep") from None
    check_depth(value, where)
    return value


def check_depth(value: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """NasError if lists/dicts in ``value`` nest more than ``limit`` levels (checked without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth >= limit:
                raise NasError(f"{where}: nested more than {limit} levels deep")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as a Path if a file can be written there (its folder may still have to be created);
    NasError naming ``flag`` if it is a directory or its nearest existing folder is a file or read-only."""
    out = Path(path)
    if str(path) == "" or out.is_dir():
        raise NasError(f"{flag}: {str(path)!r} is a directory; give a file name")
    _check_creatable(out.parent, f"{flag}: cannot write {str(path)!r}")
    return out


def check_folder_creatable(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as a Path if it is a folder or one can be created there; NasError naming ``flag`` if its
    nearest existing folder is a file or read-only (checked before any work, nothing is created)."""
    out = Path(path)
    if out.is_dir():
        return out
    _check_creatable(out, f"{flag}: cannot create {str(path)!r}")
    return out


def _check_creatable(target: Path, prefix: str) -> None:
    folder = target
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NasError(f"{prefix}: {str(folder)!r} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NasError(f"{prefix}: the folder {str(folder)!r} is not writable")


@contextmanager
def atomic_file(path: str | os.PathLike, binary: bool = False) -> Iterator[IO]:
    """A file object whose content replaces ``path`` only when the block ends without error.

    It is written under a unique temporary name in the same folder (created if missing) and then
    renamed, so readers and concurrent writers never see a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the result gets the usual mode
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_file`); returns the path."""
    with atomic_file(path) as f:
        f.write(text)
    return Path(path)
