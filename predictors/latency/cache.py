"""On-disk caches of latency work: measurements, lookup-table entries, block costs.

Each cache is a JSON-lines file (one ``{"key": ..., ...}`` object per line, the last line for a
key wins) under :func:`cache_dir` (``~/.cache/nas/latency/`` or ``$NAS_CACHE_DIR``). Appends are
single writes, so several processes may share a file; a file changed by another process is
re-read on the next lookup.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CACHE_ENV = "NAS_CACHE_DIR"
# Bumped when the networks the blocks build, or the way they are timed, run differently, so that old
# timings are not reused: 2 = a channel shuffle keeps channels_last (before, every layer after a shuffle
# block got a contiguous tensor); 3 = timed with glibc's allocator thresholds fixed
# (``predictors.latency.measure.steady_allocator``). Part of the file names of measurements and lookup tables.
TIMING_SCHEME = 3


def cache_dir() -> Path:
    """Where latency caches live: ``$NAS_CACHE_DIR`` or ``~/.cache/nas/latency``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "nas" / "latency"


class JsonlStore:
    """A dict of JSON records persisted as JSON lines; ``path=None`` keeps it in memory only."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        self._records: dict[str, dict[str, Any]] = {}
        self._size = -1

    def _refresh(self) -> None:
        if self.path is None:
            return
        if not self.path.exists():
            self._size = 0
            return
        size = self.path.stat().st_size
        if size == self._size:
            return
        with open(self.path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash: ignore it
                if isinstance(record, dict) and "key" in record:
                    self._records[record["key"]] = record
        self._size = size

    def get(self, key: str) -> dict[str, Any] | None:
        if key not in self._records:
            self._refresh()
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        record = {"key": key, **record}
        self._records[key] = record
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with open(self.path, "ab") as f:
            f.write(line)
            end = f.tell()
        # in step when the file grew by exactly our line; else re-read lazily (another process appended)
        self._size = end if self._size >= 0 and end == self._size + len(line) else -1

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        self._refresh()
        return len(self._records)

    def values(self) -> list[dict[str, Any]]:
        self._refresh()
        return list(self._records.values())


TORCH_FORMAT = "channels_last"  # the memory format torch measurements use unless told otherwise


def measurement_key(genotype_hash: str, fingerprint_id: str, resolution: int, batch: int, memory_format: str) -> str:
    return f"{genotype_hash}|{fingerprint_id}|r{resolution}|b{batch}|{memory_format}"


class LatencyCache(JsonlStore):
    """Whole-network measurements keyed by (genotype hash, fingerprint, resolution, batch, memory format)."""

    def __init__(self, path: str | os.PathLike | None = "default") -> None:
        super().__init__(cache_dir() / f"measurements-v{TIMING_SCHEME}.jsonl" if path == "default" else path)

    def lookup(self, genotype_hash: str, fingerprint_id: str, resolution: int, batch: int,
               memory_format: str = TORCH_FORMAT) -> dict | None:
        return self.get(measurement_key(genotype_hash, fingerprint_id, resolution, batch, memory_format))

    def store(self, genotype_hash: str, fingerprint_id: str, resolution: int, batch: int, record: dict,
              memory_format: str = TORCH_FORMAT) -> None:
        self.put(measurement_key(genotype_hash, fingerprint_id, resolution, batch, memory_format), record)
