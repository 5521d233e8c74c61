"""Latency lookup table: every distinct part (stem, block instance, head) profiled once in isolation.

The table is persisted per device fingerprint and batch (``lut-<fingerprint>-b<batch>.jsonl`` under
the cache dir). A network's latency is the sum of its parts' entries times a learned correction
``exp(f(x))``, a small ridge regression of log(measured / table sum) on the table sum and cost
features (fusion, cache and framework effects a sum misses), fitted on a few measured networks and
stored next to the table (``.correction.json``). Missing entries are profiled on demand.
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
CORRECTION_FEATURES = ("log_table_ms", "log_macs", "log_mem", "kernels", "blocks")


@dataclass(frozen=True)
class Prediction:
    """A latency prediction with an uncertainty interval (about 10% and 90% quantiles), in ms."""

    ms: float
    low_ms: float
    high_ms: float


@dataclass
class Correction:
    """log(measured / table sum) = intercept + coef . standardized(features); ridge-fitted."""

    names: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float = 0.0
    n: int = 0
    low: float = 0.0  # 10% quantile of the log residuals
    high: float = 0.0  # 90% quantile

    @classmethod
    def identity(cls) -> Correction:
        k = len(CORRECTION_FEATURES)
        return cls(list(CORRECTION_FEATURES), [0.0] * k, [1.0] * k, [0.0] * k)

    @classmethod
    def fit(cls, X: np.ndarray, log_ratio: np.ndarray, alpha: float = 1.0) -> Correction:
        """Ridge on standardized features; with fewer than 8 networks only a constant factor."""
        from sklearn.linear_model import Ridge

        n, k = X.shape
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        if n < 8:
            coef, intercept = np.zeros(k), float(np.median(log_ratio))
        else:
            model = Ridge(alpha=alpha).fit((X - mean) / scale, log_ratio)
            coef, intercept = model.coef_, float(model.intercept_)
        resid = log_ratio - ((X - mean) / scale) @ coef - intercept
        low, high = (np.quantile(resid, [0.1, 0.9]) if n >= 2 else (0.0, 0.0))
        return cls(list(CORRECTION_FEATURES), mean.tolist(), scale.tolist(), list(map(float, coef)), intercept, n,
                   float(low), float(high))

    def log_factor(self, x: np.ndarray) -> float:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return float(self.intercept + z @ np.asarray(self.coef))


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
        return Correction(**{k: raw[k] for k in asdict(Correction.identity())})

    def __len__(self) -> int:
        return len(self.store)

    def missing(self, parts: Sequence[Part]) -> list[Part]:
        """Parts without an entry (each distinct key once)."""
        seen: dict[str, Part] = {}
        for p in parts:
            if p.key not in seen and self.store.get(p.key) is None:
                seen[p.key] = p
        return list(seen.values())

    def profile(self, parts: Sequence[Part], group: int = 8,
                progress: Callable[[int, int], None] | None = None) -> int:
        """Profile every missing part in isolation (interleaved groups); returns how many were added."""
        todo = self.missing(parts)
        for start in range(0, len(todo), group):
            chunk = todo[start:start + group]
            modules = [(p.build(), (self.config.batch, *p.in_shape)) for p in chunk]
            for part, timing in zip(chunk, measure_modules(modules, self.config), strict=True):
                self.store.put(part.key, {"ms": timing.median_ms, "iqr_ms": timing.iqr_ms, "reps": timing.reps,
                                          "memory_format": timing.memory_format})
                self.costs.cost(part, self.config.batch)  # count its cost now: predictions need no counting
            if progress is not None:
                progress(min(start + group, len(todo)), len(todo))
        return len(todo)

    def table_ms(self, genotype: Genotype, resolution: int | None = None, profile_missing: bool = True) -> float:
        """Sum of the table entries of ``genotype``'s parts (profiling missing ones if allowed)."""
        key = (genotype.hash(), resolution)
        if key in self._sums:
            return self._sums[key]
        parts = network_parts(genotype, resolution)
        if profile_missing:
            self.profile(parts)
        elif self.missing(parts):
            raise NasError(f"latency table {self.path} lacks {len(self.missing(parts))} part(s) of {genotype.name}")
        total = sum(self.store.get(p.key)["ms"] for p in parts)
        self._sums[key] = total
        return total

    def clear_cache(self) -> None:
        """Forget cached table sums (to time cold predictions)."""
        self._sums.clear()

    def features(self, genotype: Genotype, resolution: int | None = None) -> np.ndarray:
        """The correction features of ``genotype`` (see :data:`CORRECTION_FEATURES`)."""
        f = cost_features(genotype, self.config.batch, resolution, self.costs)
        f["log_table_ms"] = math.log(self.table_ms(genotype, resolution))
        return np.array([f[name] for name in CORRECTION_FEATURES])

    def fit_correction(self, genotypes: Sequence[Genotype], measured_ms: Sequence[float],
                       resolution: int | None = None, save: bool = True) -> Correction:
        """Fit (and save) the correction on networks measured whole on this device."""
        X = np.stack([self.features(g, resolution) for g in genotypes])
        log_ratio = np.log(np.asarray(measured_ms, dtype=float)) - X[:, 0]
        self.correction = Correction.fit(X, log_ratio)
        if save:
            self.correction_path.parent.mkdir(parents=True, exist_ok=True)
            self.correction_path.write_text(json.dumps(asdict(self.correction), indent=1))
        return self.correction

    def predict_interval(self, genotype: Genotype, resolution: int | None = None) -> Prediction:
        """Table sum times the correction, with the correction's residual quantiles as the interval."""
        x = self.features(genotype, resolution)
        log_ms = x[0] + self.correction.log_factor(x)
        ms = math.exp(log_ms)  # the bounds are clamped so rounding never puts ms outside them
        return Prediction(ms, min(ms, math.exp(log_ms + self.correction.low)),
                          max(ms, math.exp(log_ms + self.correction.high)))

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
            outs = [in_ch] if block_type == "shuffle" and stage.stride == 1 else stage.out
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
