"""On-disk caches of latency work: measurements, lookup-table entries, block costs.

Each cache is a :class:`searchspace.jsonl.JsonlStore` file under :func:`cache_dir`
(``~/.cache/nas/latency/`` or ``$NAS_CACHE_DIR``), so several processes may share it and a line torn by
a kill costs only that record.
"""

from __future__ import annotations

import os
from pathlib import Path

from searchspace.jsonl import JsonlStore

CACHE_ENV = "NAS_CACHE_DIR"
# Bumped when the networks the blocks build, or the way they are timed, run differently, so that old
# timings are not reused: 2 = a channel shuffle keeps channels_last (before, every layer after a shuffle
# block got a contiguous tensor); 3 = timed with glibc's allocator thresholds fixed
# (``predictors.latency.allocator.steady_allocator``). Part of the file names of measurements and lookup tables.
TIMING_SCHEME = 3


def cache_dir() -> Path:
    """Where latency caches live: ``$NAS_CACHE_DIR`` or ``~/.cache/nas/latency``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "nas" / "latency"


TORCH_FORMAT = "channels_last"  # the memory format torch measurements use unless told otherwise


def measurement_key(genotype_hash: str, fingerprint_id: str, resolution: int, batch: int, memory_format: str) -> str:
    return f"{genotype_hash}|{fingerprint_id}|r{resolution}|b{batch}|{memory_format}"


class LatencyCache(JsonlStore):
    """Whole-network measurements keyed by (genotype hash, fingerprint, resolution, batch, memory format)."""

    FILE_NAME = f"measurements-v{TIMING_SCHEME}.jsonl"

    def __init__(self, path: str | os.PathLike | None = "default") -> None:
        super().__init__(cache_dir() / self.FILE_NAME if path == "default" else path)

    def lookup(self, genotype_hash: str, fingerprint_id: str, resolution: int, batch: int,
               memory_format: str = TORCH_FORMAT) -> dict | None:
        return self.get(measurement_key(genotype_hash, fingerprint_id, resolution, batch, memory_format))

    def store(self, genotype_hash: str, fingerprint_id: str, resolution: int, batch: int, record: dict,
              memory_format: str = TORCH_FORMAT) -> None:
        self.put(measurement_key(genotype_hash, fingerprint_id, resolution, batch, memory_format), record)
