"""From a lookup-table sum to a whole network's latency: the correction, its data and its reference networks.

A table sum misses what only a whole network shows (framework overhead, fusion, cache effects, a
family that runs slower inside a network than alone). The :class:`Correction` learns it from
networks measured whole on the same device and conditions: a non-negative linear model
``measured ~ sum_f a_f * table_f + b * parts + c + ...`` over the table sums of each part group
(stem, head, each block family), fitted by relative-error least squares with each ``a_f`` shrunk
towards a common factor (so a few networks fit one factor, many fit each family). Its interval is a
Student-t 80% interval from the out-of-fold log residuals, so it says how far predictions on this
device have really been off, and is wider when few networks were measured, widened by the error all
predictions of one calibration share (:data:`SHARED_ERROR`). Every network measured
whole is kept (:class:`Observations`), so that the correction is refitted, cheaply, as more networks
are measured. On first use the table measures a few :func:`reference_networks`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from searchspace.blocks import FAMILIES
from searchspace.genotype import Genotype
from searchspace.jsonl import JsonlStore

PART_GROUPS = ("stem", "head", *FAMILIES)
GROUP_FEATURES = tuple(f"{g}_ms" for g in PART_GROUPS)
EXTRA_FEATURES = ("parts", "one", "params_m", "mem_mb")  # per-part overhead, per-network overhead, size terms
FULL_FEATURES = (*GROUP_FEATURES, *EXTRA_FEATURES)
# weights pulling each group's factor to the common one and each extra term to 0 (about how many networks
# the prior is worth); the fit keeps the one whose out-of-fold error is smallest, so a few networks fit
# about one factor and many fit each family's own (one fixed weight could not do both: 3 overfitted 17
# calibration networks, 100 could not learn a family 2.3x slower than the rest from 200)
SHRINKS = (3.0, 30.0, 300.0)
FOLDS = 10  # out-of-fold residuals for the interval
# the log error every prediction of one calibration shares (the machine a little faster or slower than while
# it calibrated), which its residuals cannot show: 3%, the size of the median prediction error of whole
# calibrations in experiments/bench_latency.py (see experiments/README.md)
SHARED_ERROR = 0.03
# a family holding this share of a network's table sum, never seen by the fit, widens the interval
UNSEEN_SHARE = 0.10
# first-use calibration: two common zoo networks and one single-family default-space member per family
REFERENCE_ZOO = ("mobilenet_v3_small", "resnet18")
REFERENCE_SEED = 0
REFERENCE_RANDOM = 8  # random default-space members: the sizes a search meets, not only the extremes


@dataclass(frozen=True)
class Prediction:
    """A latency prediction with an uncertainty interval (an 80% interval: about 10% and 90% quantiles), in ms."""

    ms: float
    low_ms: float
    high_ms: float
    note: str = ""  # what the correction had not seen (the interval is widened for it); "" when nothing


def _solve(rows: Sequence[dict[str, float]], y: np.ndarray, names: Sequence[str], shrink: float) -> np.ndarray:
    """[common factor, one coefficient per name], all non-negative, minimising the relative error plus
    shrinkage: a group's factor is pulled to the common factor, an extra term to 0, each weighted by
    how much of a network's time that feature typically explains (so data outweighs it as it grows)."""
    from scipy.optimize import lsq_linear

    X = np.array([[row.get(k, 0.0) for k in names] for row in rows], dtype=float) / y[:, None]
    data = np.hstack([np.zeros((len(y), 1)), X])
    scale = np.maximum(np.sqrt(np.mean(X ** 2, axis=0)), 0.05)  # a feature's typical share of a network
    penalty = np.zeros((len(names), len(names) + 1))
    for j, name in enumerate(names):
        penalty[j, j + 1] = math.sqrt(shrink) * scale[j]
        if name in GROUP_FEATURES:
            penalty[j, 0] = -penalty[j, j + 1]
    A = np.vstack([data, penalty])
    b = np.concatenate([np.ones(len(y)), np.zeros(len(names))])
    return lsq_linear(A, b, bounds=(0.0, np.inf)).x


def _half_width(resid: np.ndarray, retest: float = 0.0) -> float:
    """Half-width of an 80% prediction interval of the next log error, from out-of-fold log residuals,
    the calibration's shared error and this machine's retest noise (the RMS log difference of two readings of
    one network: a prediction is timed in one minute and checked against a measurement in another):
    t(0.9, n-1) * sqrt(RMS^2 * (1 + 1/n) + SHARED_ERROR^2 + retest^2).
    Quantiles of a few residuals were too narrow (10%/90% quantiles of 17 held 44.5% of 200 random
    networks' measurements), and so were the residuals alone (40-72% in two benchmark runs)."""
    from scipy.stats import t

    n = len(resid)
    return float(t.ppf(0.9, n - 1) * math.sqrt(np.mean(resid ** 2) * (1 + 1 / n) + SHARED_ERROR ** 2 + retest ** 2))


@dataclass
class Correction:
    """measured ms ~ sum over part groups of factor * table sum + extra terms, fitted on networks measured whole.

    One factor per part group (stem, head, each family), all shrunk towards a ``common`` factor (a
    group never seen in the data gets the common factor), and non-negative extra terms (per part,
    per network, per million parameters, per MB of memory traffic) shrunk towards 0: with a handful
    of networks it is about one factor on the table sum, with many it learns each family. The fit
    minimises relative (not absolute) error, so a 5 ms network counts as much as a 100 ms one.
    ``low`` / ``high`` bound an 80% interval of the log error (:func:`_half_width`: the out-of-fold log
    residuals, :data:`SHARED_ERROR` and ``retest``; 0 with fewer than 3 networks); ``n`` is the number of networks
    (0: not calibrated); ``provisional``: measured under load, to be replaced by a quiet calibration.
    """

    names: list[str]
    coef: list[float]
    n: int = 0
    low: float = 0.0
    high: float = 0.0
    common: float = 1.0
    shrink: float = SHRINKS[-1]  # the shrinkage chosen (see SHRINKS)
    # fitted on networks measured while other work ran (predictors.latency.load): used until a quiet
    # calibration replaces it, never refitted from or added to the observations
    provisional: bool = False
    other_cores: float = 0.0  # the other work seen while it was measured (cores)
    seen: list[str] = field(default_factory=list)  # part groups with time in the networks it was fitted on
    table_range: list[float] = field(default_factory=list)  # [smallest, largest] table sum (ms) of those networks
    retest: float = 0.0  # RMS log difference of two readings of one network here, measured when it calibrated

    @classmethod
    def identity(cls) -> Correction:
        return cls([], [])

    @classmethod
    def fit(cls, rows: Sequence[dict[str, float]], measured_ms: Sequence[float], retest: float = 0.0) -> Correction:
        """Fit on per-network feature dicts (see ``LatencyTable.correction_features``): the shrinkage of
        :data:`SHRINKS` with the smallest out-of-fold error, and the interval from that fit's residuals
        and the machine's ``retest`` noise."""
        y = np.asarray(measured_ms, dtype=float)
        n = len(y)
        if n == 0:
            return cls.identity()
        names = list(FULL_FEATURES)
        seen = {"seen": [g for g in GROUP_FEATURES if any(r.get(g, 0.0) > 0 for r in rows)],
                "table_range": [min(r["table_ms"] for r in rows), max(r["table_ms"] for r in rows)], "retest": retest}
        if n < 3:  # too few for out-of-fold residuals: the strongest pull, no interval
            x = _solve(rows, y, names, SHRINKS[-1])
            return cls(names, list(map(float, x[1:])), n, 0.0, 0.0, float(x[0]), SHRINKS[-1], **seen)
        resid = {shrink: cls._out_of_fold(rows, y, names, shrink) for shrink in SHRINKS}
        shrink = min(SHRINKS, key=lambda s: float(np.mean(resid[s] ** 2)))
        x = _solve(rows, y, names, shrink)
        half = _half_width(resid[shrink], retest)
        return cls(names, list(map(float, x[1:])), n, -half, half, float(x[0]), shrink, **seen)

    @classmethod
    def _out_of_fold(cls, rows: Sequence[dict[str, float]], y: np.ndarray, names: list[str],
                     shrink: float) -> np.ndarray:
        """Log residuals of each network predicted by a fit on the other folds."""
        n = len(y)
        folds = min(FOLDS, n)
        resid = np.zeros(n)
        for fold in range(folds):
            test = np.arange(n) % folds == fold
            x = _solve([r for r, t in zip(rows, test, strict=True) if not t], y[~test], names, shrink)
            fold_fit = cls(names, list(x[1:]), common=float(x[0]))
            resid[test] = [math.log(v / fold_fit.apply(r)) for r, v, t in zip(rows, y, test, strict=True) if t]
        return resid

    def apply(self, row: dict[str, float]) -> float:
        """Corrected latency (ms) of a network with feature dict ``row`` (groups it has no factor for: common)."""
        known = sum(row.get(k, 0.0) for k in self.names if k in GROUP_FEATURES)
        value = self.common * (row["table_ms"] - known)
        value += sum(c * row.get(k, 0.0) for k, c in zip(self.names, self.coef, strict=True))
        return max(value, 0.05 * row["table_ms"])  # never near zero, whatever the coefficients

    def interval(self, row: dict[str, float]) -> Prediction:
        """The corrected latency with its interval (always containing it), widened on both sides by
        :meth:`family_spread` when a family the fit never saw holds a share of the network (its factor is
        a guess: the common one), and a note saying what the correction had not seen."""
        ms = self.apply(row)
        unseen, outside = self.unseen_groups(row), self.outside_range(row)
        widen = self.family_spread() if unseen else 0.0
        notes = [f"{', '.join(g.removesuffix('_ms') for g in unseen)}: no network of this family was measured whole "
                 f"here (its factor is the common one; interval widened by {math.expm1(widen):.0%})"] if unseen else []
        if self.provisional:
            notes.append(f"the correction is provisional: calibrated while the machine was busy (~{self.other_cores:.1f} "
                         "cores of other work); it is measured again when the machine is quiet")
        if outside:
            low, high = self.table_range
            notes.append(f"table sum {row['table_ms']:.3g} ms is outside the {low:.3g}-{high:.3g} ms of the networks "
                         "measured whole (extrapolated)")
        return Prediction(ms, min(ms, ms * math.exp(self.low - widen)), max(ms, ms * math.exp(self.high + widen)),
                          "; ".join(notes))

    def unseen_groups(self, row: dict[str, float]) -> list[str]:
        """Part groups holding at least :data:`UNSEEN_SHARE` of the network's table sum that no fitted network had."""
        if not self.seen:  # identity, or saved before groups were recorded: nothing to say
            return []
        return [g for g in GROUP_FEATURES if g not in self.seen and row.get(g, 0.0) >= UNSEEN_SHARE * row["table_ms"]]

    def outside_range(self, row: dict[str, float]) -> bool:
        """Whether the network's table sum lies outside those of the networks the fit saw."""
        return bool(self.table_range) and not self.table_range[0] <= row["table_ms"] <= self.table_range[1]

    def family_spread(self) -> float:
        """How far this machine's family factors stray from the common one: the largest |log(factor / common)|
        over the groups seen (an unseen family may stray as far), at least :data:`SHARED_ERROR`."""
        factors = [c for k, c in zip(self.names, self.coef, strict=True) if k in self.seen and c > 0]
        spread = max((abs(math.log(c / self.common)) for c in factors), default=0.0) if self.common > 0 else 0.0
        return max(spread, SHARED_ERROR)


class Observations:
    """Networks measured whole under one table's conditions: genotype, resolution, ms and features."""

    def __init__(self, path) -> None:
        self.store = JsonlStore(path)

    def add(self, genotype: Genotype, resolution: int, measured_ms: float, features: dict[str, float]) -> None:
        self.store.put(f"{genotype.hash()}|r{resolution}", {
            "genotype": genotype.to_dict(with_provenance=False), "resolution": resolution,
            "measured_ms": float(measured_ms), "features": features})

    def records(self) -> list[dict]:
        return self.store.values()

    def __len__(self) -> int:
        return len(self.store)


def reference_networks(resolution: int) -> list[Genotype]:
    """The networks measured whole on first use, at ``resolution``: :data:`REFERENCE_ZOO`, for each
    family of the default space a seeded shallow, narrow member of the space made of that family alone
    (so that the correction sees each family's own factor), and :data:`REFERENCE_RANDOM` seeded
    members of the default space (typical sizes: with only the small ones the correction extrapolates)."""
    from searchspace import load_genotype
    from searchspace.errors import GenotypeError
    from searchspace.resolve import with_scaling
    from searchspace.space import DEFAULT_TYPES, Space, default_space

    candidates = [load_genotype(f"zoo:{name}") for name in REFERENCE_ZOO]
    for family in DEFAULT_TYPES:  # the shallowest, narrowest member: quick to measure
        config = default_space([family]).config
        small = [replace(stage, out=[min(stage.out)], repeat=[min(stage.repeat)]) for stage in config.stages]
        candidates.append(Space(replace(config, stages=small)).random_genotype(REFERENCE_SEED))
    space = default_space()
    candidates += [space.random_genotype(10_000 + REFERENCE_SEED + i) for i in range(REFERENCE_RANDOM)]
    out = []
    for g in candidates:
        try:
            out.append(with_scaling(g, resolution=resolution))
        except GenotypeError:  # too small a resolution for this network's strides
            continue
    return out
