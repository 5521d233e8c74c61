"""Latency lookup table: every distinct part (stem, block instance, head) profiled once in isolation.

The table is persisted per device fingerprint and batch (``lut-<fingerprint>-b<batch>.jsonl`` under
the cache dir). Each part is profiled in both memory formats (torch backend), because a whole
network runs in one format, the faster one: a network's table sum is taken in the format whose sum
is smaller. What a sum misses (per-network framework overhead, fusion, cache effects, a family that
runs slower inside a network than alone) is learned from a few networks measured whole: the
correction is a non-negative linear model ``measured ~ sum_f a_f * table_f + b * parts + c + ...``
over the table sums of each part group (stem, head, each block family), fitted by relative-error
least squares (:class:`Correction`) and stored next to the table (``.correction.json``). Missing
entries are profiled on demand.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from predictors.fingerprint import fingerprint
from predictors.latency import MeasureConfig, measure_modules
from predictors.latency_cache import JsonlStore, cache_dir
from predictors.latency_features import (
    CostTable,
    Part,
    block_part,
    cost_features,
    cost_table,
    head_part,
    network_parts,
    stem_part,
)
from searchspace.blocks import FAMILIES, BlockArgs
from searchspace.errors import GenotypeError, NasError
from searchspace.genotype import Genotype, parse_block
from searchspace.resolve import resolve
from searchspace.space import Space

PART_PROFILE = MeasureConfig(warmup=2, reps=30, min_reps=5, rounds=3, round_seconds=0.05, target_spread=0.03)
FORMATS = ("contiguous", "channels_last")
PART_GROUPS = ("stem", "head", *FAMILIES)
# the correction's features, richest first; a fit uses the richest set it has enough networks for
FULL_FEATURES = (*(f"{g}_ms" for g in PART_GROUPS), "parts", "one", "params_m", "mem_mb")
SMALL_FEATURES = ("table_ms", "parts", "one")
NETWORKS_PER_FEATURE = 3


@dataclass(frozen=True)
class Prediction:
    """A latency prediction with an uncertainty interval (about 10% and 90% quantiles), in ms."""

    ms: float
    low_ms: float
    high_ms: float


@dataclass
class Correction:
    """measured ms ~ coef . features, non-negative, fitted on networks measured whole.

    The fit minimises relative (not absolute) error, so a 5 ms network counts as much as a 100 ms
    one. It uses :data:`FULL_FEATURES` when there are at least ``NETWORKS_PER_FEATURE`` networks per
    feature, else :data:`SMALL_FEATURES`, and with very few networks a single factor on the table
    sum. ``low`` / ``high`` are the 10% / 90% quantiles of the log residuals.
    """

    names: list[str]
    coef: list[float]
    n: int = 0
    low: float = 0.0
    high: float = 0.0

    @classmethod
    def identity(cls) -> Correction:
        return cls(["table_ms"], [1.0])

    @classmethod
    def fit(cls, rows: Sequence[dict[str, float]], measured_ms: Sequence[float]) -> Correction:
        """Fit on per-network feature dicts (see :meth:`LatencyTable.correction_features`)."""
        from scipy.optimize import nnls

        y = np.asarray(measured_ms, dtype=float)
        n = len(y)
        if n == 0:
            return cls.identity()
        for names in (FULL_FEATURES, SMALL_FEATURES):
            if n >= NETWORKS_PER_FEATURE * len(names):
                A = np.array([[row[k] for k in names] for row in rows])
                coef, _ = nnls(A / y[:, None], np.ones(n))
                break
        else:
            names = ("table_ms",)
            A = np.array([[row["table_ms"]] for row in rows])
            coef = np.array([float(np.median(y / A[:, 0]))])
        fitted = np.maximum(A @ coef, 1e-9)
        resid = np.log(y / fitted)
        low, high = (np.quantile(resid, [0.1, 0.9]) if n >= 2 else (0.0, 0.0))
        return cls(list(names), list(map(float, coef)), n, float(low), float(high))

    def apply(self, row: dict[str, float]) -> float:
        """Corrected latency (ms) of a network with feature dict ``row``."""
        value = sum(c * row[k] for k, c in zip(self.names, self.coef, strict=True))
        return max(value, 0.05 * row["table_ms"])  # never near zero, whatever the coefficients


class LatencyTable:
    """Per-part latencies for one fingerprint and batch, plus the correction to whole networks."""

    def __init__(self, config: MeasureConfig | None = None, path: str | Path | None = None,
                 costs: CostTable | None = None) -> None:
        self.config = config or PART_PROFILE
        self.fingerprint = fingerprint(self.config.backend, self.config.device, self.config.threads)
        default = cache_dir() / f"lut-{self.fingerprint.id()}-b{self.config.batch}.jsonl"
        self.path = Path(path) if path is not None else default
        self.store = JsonlStore(self.path)
        self.costs = costs or cost_table()
        self.correction = self._load_correction()
        self._sums: dict[tuple, float] = {}

    @classmethod
    def for_this_device(cls, backend: str = "torch", threads: int | None = None, device: str = "cpu",
                        batch: int = 1, path: str | Path | None = None, must_exist: bool = True) -> LatencyTable:
        """The table of this machine's fingerprint; NasError if none was built (``must_exist``)."""
        table = cls(replace(PART_PROFILE, backend=backend, threads=threads, device=device, batch=batch), path)
        if must_exist and not table.path.exists():
            raise NasError(f"no latency table for this device (fingerprint {table.fingerprint.id()}, batch {batch}) "
                           f"at {table.path}; build it with `nas latency build-lut`")
        return table

    @property
    def correction_path(self) -> Path:
        return self.path.with_suffix(".correction.json")

    def _load_correction(self) -> Correction:
        if not self.correction_path.exists():
            return Correction.identity()
        raw = json.loads(self.correction_path.read_text())
        if "mean" in raw:  # written by an older version (log-ratio ridge): refit with build-lut
            return Correction.identity()
        return Correction(**{k: raw[k] for k in asdict(Correction.identity())})

    def __len__(self) -> int:
        return len(self.store)

    def missing(self, parts: Sequence[Part]) -> list[Part]:
        """Parts without a complete entry (each distinct key once)."""
        seen: dict[str, Part] = {}
        for p in parts:
            if p.key not in seen and not self._complete(self.store.get(p.key)):
                seen[p.key] = p
        return list(seen.values())

    @staticmethod
    def _complete(entry: dict | None) -> bool:
        return entry is not None and all(f"{f}_ms" in entry for f in FORMATS)

    def profile(self, parts: Sequence[Part], group: int = 8,
                progress: Callable[[int, int], None] | None = None) -> int:
        """Profile every missing part in isolation (interleaved groups), in each memory format.

        Returns how many parts were added. Backends other than torch run one format only.
        """
        todo = self.missing(parts)
        formats = FORMATS if self.config.backend == "torch" and self.config.device == "cpu" else FORMATS[:1]
        for start in range(0, len(todo), group):
            chunk = todo[start:start + group]
            timings = {}
            for fmt in formats:
                config = replace(self.config, channels_last=fmt == "channels_last")
                modules = [(p.build(), (self.config.batch, *p.in_shape)) for p in chunk]
                timings[fmt] = measure_modules(modules, config)
            for i, part in enumerate(chunk):
                by_format = {fmt: timings.get(fmt, timings[formats[0]])[i] for fmt in FORMATS}
                best = min(by_format.values(), key=lambda t: t.median_ms)
                self.store.put(part.key, {"ms": best.median_ms, "iqr_ms": best.iqr_ms, "reps": best.reps,
                                          **{f"{fmt}_ms": t.median_ms for fmt, t in by_format.items()}})
                self.costs.cost(part, self.config.batch)  # count its cost now: predictions need no counting
            if progress is not None:
                progress(min(start + group, len(todo)), len(todo))
        return len(todo)

    def group_sums(self, genotype: Genotype, resolution: int | None = None,
                   profile_missing: bool = True) -> dict[str, float]:
        """Table sums per part group (stem, head, each family) in the faster memory format, + parts."""
        key = (genotype.hash(), resolution)
        if key in self._sums:
            return self._sums[key]
        parts = network_parts(genotype, resolution)
        if profile_missing:
            self.profile(parts)
        elif self.missing(parts):
            raise NasError(f"latency table {self.path} lacks {len(self.missing(parts))} part(s) of {genotype.name}")
        entries = [self.store.get(p.key) for p in parts]
        fmt = min(FORMATS, key=lambda f: sum(e[f"{f}_ms"] for e in entries))
        sums = dict.fromkeys((f"{g}_ms" for g in PART_GROUPS), 0.0)
        for part, entry in zip(parts, entries, strict=True):
            sums[f"{part.group}_ms"] += entry[f"{fmt}_ms"]
        sums["table_ms"] = sum(sums[f"{g}_ms"] for g in PART_GROUPS)
        sums["parts"] = float(len(parts))
        self._sums[key] = sums
        return sums

    def table_ms(self, genotype: Genotype, resolution: int | None = None, profile_missing: bool = True) -> float:
        """Sum of the table entries of ``genotype``'s parts in the faster memory format."""
        return self.group_sums(genotype, resolution, profile_missing)["table_ms"]

    def clear_cache(self) -> None:
        """Forget cached table sums (to time cold predictions)."""
        self._sums.clear()

    def correction_features(self, genotype: Genotype, resolution: int | None = None) -> dict[str, float]:
        """Every feature a correction may use (see :data:`FULL_FEATURES`)."""
        f = cost_features(genotype, self.config.batch, resolution, self.costs)
        return {**self.group_sums(genotype, resolution), "one": 1.0,
                "params_m": math.expm1(f["log_params"]) / 1e6, "mem_mb": math.expm1(f["log_mem"]) / 1e6}

    def fit_correction(self, genotypes: Sequence[Genotype], measured_ms: Sequence[float],
                       resolution: int | None = None, save: bool = True) -> Correction:
        """Fit (and save) the correction on networks measured whole on this device."""
        rows = [self.correction_features(g, resolution) for g in genotypes]
        self.correction = Correction.fit(rows, measured_ms)
        if save:
            self.correction_path.parent.mkdir(parents=True, exist_ok=True)
            self.correction_path.write_text(json.dumps(asdict(self.correction), indent=1))
        return self.correction

    def predict_interval(self, genotype: Genotype, resolution: int | None = None) -> Prediction:
        """Corrected table sum, with the correction's residual quantiles as the interval."""
        ms = self.correction.apply(self.correction_features(genotype, resolution))
        return Prediction(ms, min(ms, ms * math.exp(self.correction.low)), max(ms, ms * math.exp(self.correction.high)))

    def predict(self, genotype: Genotype, resolution: int | None = None) -> float:
        """Predicted latency (ms) of ``genotype``."""
        return self.predict_interval(genotype, resolution).ms


def space_parts(space: Space) -> list[Part]:
    """Every distinct part the space can produce (stem, each block instance per stage, head).

    Per stage it walks the reachable (input channels, input size) states, every allowed block type,
    output width and combination of the family's searched values, for the first block (stage stride)
    and, when a stage may repeat, for the repeated block (stride 1, in == out).
    """
    cfg = space.config
    net = resolve(space.random_genotype(0))
    parts: dict[str, Part] = {}

    def add(part: Part) -> None:
        parts.setdefault(part.key, part)

    add(stem_part(net.stem_type, net.stem, net.in_channels, net.resolution))
    states = {(net.stem["out"], net.stem_size)}
    for i, stage in enumerate(cfg.stages):
        path = f"space.stages[{i}]"
        next_states = set()
        for (in_ch, size), block_type in itertools.product(sorted(states), stage.types):
            family = FAMILIES[block_type]
            values = space.family_values[block_type]
            outs = [in_ch] if family.keeps_width(stage.stride) else stage.out
            if stage.stride > 1 and size < 2:
                continue
            for out, combo in itertools.product(outs, itertools.product(*values.values())):
                raw = {"type": block_type, "out": out, "stride": stage.stride, **dict(zip(values, combo, strict=True))}
                try:
                    params = parse_block(raw, path).params
                    first = BlockArgs(in_ch, out, stage.stride, params)
                    family.check(first, path)
                except GenotypeError:
                    continue
                out_size = family.output_size(size, stage.stride)
                add(block_part(block_type, first, size))
                if max(stage.repeat) > 1:
                    again = BlockArgs(out, out, 1, params)
                    try:
                        family.check(again, path)
                    except GenotypeError:
                        continue
                    add(block_part(block_type, again, out_size))
                next_states.add((out, out_size))
        states = next_states
    for in_ch, size in sorted(states):
        add(head_part(net.head, in_ch, size))
    return list(parts.values())
