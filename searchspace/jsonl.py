"""A dict of JSON records kept on disk as JSON lines: the one store behind the latency caches and the
audit's finished trainings.

Each line is one ``{"key": ..., ...}`` object and the last line for a key wins. An append is one write
under an exclusive ``flock`` and is fsynced, so a kill loses at most the line being written and several
processes may share a file. A line torn by a kill is skipped when read and cut off before the next
append, so the record written after it is read back whole. A file another process changed is re-read
on the next lookup.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

_TAIL_CHUNK = 4096


class JsonlStore:
    """Records by key, persisted as JSON lines at ``path``; ``path=None`` keeps them in memory only."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        self._records: dict[str, dict[str, Any]] = {}
        self._size = -1  # the file size this process has read up to; -1: read again on the next lookup

    def get(self, key: str) -> dict[str, Any] | None:
        if key not in self._records:
            self._refresh()
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` under ``key`` (written as ``{"key": key, **record}``)."""
        record = {"key": key, **record}
        self._records[key] = record
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            before = os.fstat(fd).st_size
            cut = _cut_torn_tail(fd, before)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        in_step = self._size >= 0 and before == self._size and cut == before
        self._size = cut + len(line) if in_step else -1

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        self._refresh()
        return len(self._records)

    def values(self) -> list[dict[str, Any]]:
        self._refresh()
        return list(self._records.values())

    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            self._size = 0
            return
        if size == self._size:
            return
        with open(self.path, "rb") as f:
            for line in f:
                record = _parse(line)
                if record is not None:
                    self._records[record["key"]] = record
        self._size = size


def _parse(line: bytes) -> dict[str, Any] | None:
    """The record on one line, or None for a blank, torn or foreign line."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and "key" in record else None


def _cut_torn_tail(fd: int, size: int) -> int:
    """Truncate a last line that has no newline (a write cut short by a kill); returns the new size."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            os.ftruncate(fd, keep)
            return keep
        end = start
    os.ftruncate(fd, 0)
    return 0
