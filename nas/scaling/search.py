"""EfficientNet compound scaling: coefficients, the phi = 1 grid search, families and latency ladders.

A variant at compound coefficient ``phi`` multiplies the base genotype's depth by ``alpha ** phi``,
its width by ``beta ** phi`` and its resolution by ``gamma ** phi`` (REFERENCE.md section 3, with
``alpha * beta**2 * gamma**2 ~= 2`` so that each step of phi roughly doubles the MACs). The variant
is the base genotype with new ``scaling`` fields (:func:`searchspace.with_scaling`); the channel and
repeat arithmetic stays in :mod:`searchspace.resolve` (``make_divisible(c * width, divisor)``,
``ceil(repeat * depth)``). Rounding done here, in :func:`scaled_fields` only:

- width and depth multipliers are rounded to 4 decimals (so files read ``1.21``, not
  ``1.2100000000000002``; the channel and repeat rounding downstream is far coarser);
- the resolution is ``base * gamma ** phi`` rounded half up to a multiple of :data:`RESOLUTION_MULTIPLE`
  (8), at least 8: 224 * 1.15 = 257.6 -> 256.

Latency ladders search phi on a grid of step :data:`PHI_STEP` in :data:`PHI_RANGE` by bisection with
measured (or any injected) latency, then verify the pick by a fresh, longer measurement; see
:func:`latency_ladder`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from predictors.cost import params_and_macs
from predictors.latency.conditions import CAREFUL, MeasureConfig
from predictors.latency.measure import DEFAULT, measure_many
from predictors.latency.timing import Timing
from predictors.training.loop import ProxyError
from predictors.training.proxy import ProxyConfig, train_proxy
from searchspace import Genotype, with_scaling
from searchspace.errors import GenotypeError, NasError

RESOLUTION_MULTIPLE = 8        # deployed resolutions: multiples of 8
PROXY_RESOLUTION_MULTIPLE = 4  # proxy resolutions (around 32 px): multiples of 4, see grid_search
PHI_RANGE = (-3.0, 6.0)
PHI_STEP = 0.05
COST_TARGET = 2.0              # alpha * beta**2 * gamma**2


@dataclass(frozen=True)
class Coefficients:
    """Per-unit-phi multipliers: alpha (depth), beta (width), gamma (resolution)."""

    alpha: float
    beta: float
    gamma: float

    @property
    def cost_factor(self) -> float:
        """MACs growth per unit of phi, ``alpha * beta**2 * gamma**2``."""
        return self.alpha * self.beta**2 * self.gamma**2

    def check(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 1.0):
                raise NasError(f"{name}: {value:g} must be a number >= 1 (EfficientNet's constraint)")

    def to_dict(self) -> dict[str, float]:
        return {"alpha": self.alpha, "beta": self.beta, "gamma": self.gamma}


PAPER = Coefficients(1.2, 1.1, 1.15)  # EfficientNet's grid-search result


def round_resolution(value: float, multiple: int = RESOLUTION_MULTIPLE) -> int:
    """``value`` rounded half up to a multiple of ``multiple`` (at least ``multiple``)."""
    return max(multiple, int(math.floor(value / multiple + 0.5)) * multiple)


def scaled_fields(genotype: Genotype, coeffs: Coefficients, phi: float) -> tuple[float, float, int]:
    """(width, depth, resolution) of the variant at ``phi``, relative to the genotype's own scaling."""
    width = round(genotype.scaling["width"] * coeffs.beta**phi, 4)
    depth = round(genotype.scaling["depth"] * coeffs.alpha**phi, 4)
    return width, depth, round_resolution(genotype.resolution * coeffs.gamma**phi)


def compound_scale(genotype: Genotype, coeffs: Coefficients, phi: float, name: str | None = None) -> Genotype:
    """The validated variant at ``phi`` (a fresh genotype without provenance)."""
    width, depth, resolution = scaled_fields(genotype, coeffs, phi)
    return replace(with_scaling(genotype, width, depth, resolution), provenance={}, name=name or genotype.name)


# ---- the phi = 1 grid search -------------------------------------------------------------------


def coefficient_grid(step: float = 0.05, tolerance: float = 0.05, top: float = 2.0) -> list[Coefficients]:
    """Every (alpha, beta, gamma) on a grid of ``step`` in [1, top] with the cost factor within
    ``tolerance`` (relative) of 2. With step 0.05 and 5% this holds 108 points, EfficientNet's
    (1.2, 1.1, 1.15) among them (cost factor 1.92)."""
    if not (0 < step <= 1 and 0 <= tolerance < 1):
        raise NasError(f"grid: step {step:g} must be in (0, 1] and tolerance {tolerance:g} in [0, 1)")
    values = [round(1.0 + i * step, 6) for i in range(int(math.floor((top - 1.0) / step + 1e-9)) + 1)]
    return [Coefficients(a, b, g) for a in values for b in values for g in values
            if abs(Coefficients(a, b, g).cost_factor / COST_TARGET - 1.0) <= tolerance]


def spread_subset(points: Sequence[Coefficients], k: int, first: Coefficients = PAPER) -> list[Coefficients]:
    """``k`` points covering ``points`` evenly (greedy farthest-point in log space), deterministic.

    Starts from ``first`` when it is among the points (so the paper's choice is always scored),
    else from the first point.
    """
    if k >= len(points):
        return list(points)

    def log(c: Coefficients) -> tuple[float, float, float]:
        return math.log(c.alpha), math.log(c.beta), math.log(c.gamma)

    chosen = [first if first in points else points[0]]
    dist = {p: math.dist(log(p), log(chosen[0])) for p in points}
    while len(chosen) < k:
        best = max(points, key=lambda p: dist[p])
        chosen.append(best)
        for p in points:
            dist[p] = min(dist[p], math.dist(log(p), log(best)))
    return chosen


@dataclass
class GridPoint:
    """One scored candidate of the grid: its variant at phi = 1 trained by the proxy."""

    coefficients: Coefficients
    proxy_resolution: int
    accuracy: float        # NaN when training failed
    seconds: float
    error: str = ""


def proxy_config_at(proxy: ProxyConfig, coeffs: Coefficients, phi: float = 1.0) -> ProxyConfig:
    """The proxy settings for the variant at ``phi``: the proxy resolution scaled by ``gamma ** phi``."""
    return replace(proxy, resolution=round_resolution(proxy.resolution * coeffs.gamma**phi,
                                                      PROXY_RESOLUTION_MULTIPLE))


def grid_search(genotype: Genotype, proxy: ProxyConfig, points: Sequence[Coefficients],
                train: Callable[..., object] = train_proxy,
                progress: Callable[[int, int, GridPoint], None] | None = None) -> list[GridPoint]:
    """Score each point by proxy training its phi = 1 variant, exactly as the search scores candidates.

    ``train_proxy`` applies the proxy width on top of the variant's width (so beta acts) and builds at
    the proxy resolution, which alone would ignore gamma; the resolution is therefore scaled too:
    ``proxy.resolution * gamma`` rounded to a multiple of 4 (32 * 1.15 = 36.8 -> 36). Multiples of 8
    would be too coarse at 32 px: every gamma below 1.125 would train at 32 and the grid could not
    tell them apart. Depth acts through the variant's repeats. A failed run scores NaN.
    """
    results = []
    for i, coeffs in enumerate(points):
        variant = compound_scale(genotype, coeffs, 1.0)
        config = proxy_config_at(proxy, coeffs)
        try:
            r = train(variant, config)
            point = GridPoint(coeffs, config.resolution, float(r.accuracy), float(r.train_seconds))
        except (ProxyError, GenotypeError) as err:
            point = GridPoint(coeffs, config.resolution, float("nan"), 0.0, str(err))
        results.append(point)
        if progress is not None:
            progress(i + 1, len(points), point)
    return results


def best_point(results: Sequence[GridPoint]) -> GridPoint:
    """The most accurate grid point (ties: the earlier one)."""
    scored = [r for r in results if math.isfinite(r.accuracy)]
    if not scored:
        raise NasError(f"grid: every candidate failed proxy training ({results[0].error if results else 'empty'})")
    return max(scored, key=lambda r: r.accuracy)


# ---- latency ladders ---------------------------------------------------------------------------


Probe = Timing
"""A probe: median and quartiles (``median_ms``, ``q25_ms``, ``q75_ms``, ``iqr_ms``, ``reps``) of one
network's latency; a :class:`predictors.latency.timing.Timing`, or a ``Measurement``, which also carries the
device ``fingerprint``."""
Measure = Callable[[Sequence[Genotype], bool], list[Probe]]
"""``measure(genotypes, careful)``: one probe per genotype, measured together (interleaved rounds, so
load changes hit all alike); quick (may be cached) when ``careful`` is False, else fresh and longer."""



def latency_measure(backend: str = "torch", threads: int | None = None, quick: MeasureConfig | None = None,
                    careful: MeasureConfig = CAREFUL, cache=DEFAULT) -> Measure:
    """A :data:`Measure` timing each genotype on this machine at its own resolution, batch 1.

    Quick probes use ``quick`` (default :class:`MeasureConfig`) and ``cache`` (default: the on-disk
    measurement cache; None: none; a cached result flagged noisy is measured again by
    :func:`measure_many`); careful ones use ``careful`` and never a cache, so they are fresh.
    """

    def measure(genotypes: Sequence[Genotype], is_careful: bool) -> list[Probe]:
        base = careful if is_careful else (quick or MeasureConfig())
        config = replace(base, backend=backend, threads=threads, batch=1, resolution=None)  # each its own
        return measure_many(list(genotypes), config, cache=None if is_careful else cache)

    return measure


@dataclass
class Rung:
    """The largest variant that meets one budget, or why there is none."""

    budget_ms: float
    status: str                      # ok | capped (the largest phi in range meets it) | impossible
    phi: float | None = None
    genotype: Genotype | None = None
    search: Probe | None = None      # the probe the bisection decided on
    verify: Probe | None = None      # the fresh, longer measurement that confirms the budget
    next_phi: float | None = None    # the next larger phi step, which does not meet the budget
    next_probe: Probe | None = None
    note: str = ""


def phi_grid(genotype: Genotype, coeffs: Coefficients, low: float = PHI_RANGE[0], high: float = PHI_RANGE[1],
             step: float = PHI_STEP) -> list[tuple[float, Genotype]]:
    """Variants at phi = low, low + step, ..., high; those that are not valid networks are left out
    (e.g. a resolution too small for the strides at very negative phi)."""
    out = []
    for i in range(int(round((high - low) / step)) + 1):
        phi = round(low + i * step, 6)
        try:
            out.append((phi, compound_scale(genotype, coeffs, phi)))
        except GenotypeError:
            continue
    if not out:
        raise NasError(f"latency-ladder: no valid variant for phi in [{low:g}, {high:g}]")
    return out


def latency_ladder(genotype: Genotype, coeffs: Coefficients, budgets_ms: Sequence[float], measure: Measure,
                   low: float = PHI_RANGE[0], high: float = PHI_RANGE[1], step: float = PHI_STEP,
                   max_rounds: int = 4) -> list[Rung]:
    """For each budget, the largest phi on the grid whose variant meets it, checked by measurement.

    Latency grows with phi (up to noise), so a bisection over the grid finds the boundary. A quick
    probe decides when its whole inter-quartile range is on one side of the budget; a probe whose IQR
    straddles the budget is re-measured carefully and decided by that median. Then, for at most
    ``max_rounds`` rounds, the pick and the next larger step are measured afresh and carefully, together
    (interleaved): if the pick misses, the search continues below it with careful probes only; if the
    next step meets too, it continues above. A rung is ``ok`` (``capped`` at the top of the range) only
    when its verifying median is within the budget, else ``impossible``; "the smallest variant misses"
    also rests on a fresh careful measurement, never on a quick or cached one.
    """
    ladder = _Ladder(phi_grid(genotype, coeffs, low, high, step), measure)
    return [ladder.rung(budget, max_rounds) for budget in budgets_ms]


class _Ladder:
    """Bisection state shared by the rungs: the phi grid and every probe taken so far."""

    def __init__(self, grid: list[tuple[float, Genotype]], measure: Measure) -> None:
        self.grid, self.measure = grid, measure
        self.quick: dict[int, Probe] = {}
        self.careful: dict[int, Probe] = {}   # careful probes taken while deciding
        self.verified: dict[int, Probe] = {}  # the latest verifying measurement

    def best_probe(self, i: int) -> Probe:
        """The most reliable probe of index ``i`` (verified, careful, quick); measures quickly if none."""
        for table in (self.verified, self.careful, self.quick):
            if i in table:
                return table[i]
        self.quick[i] = self.measure([self.grid[i][1]], False)[0]
        return self.quick[i]

    def meets(self, i: int, budget: float, careful_only: bool = False) -> bool:
        if i not in self.verified and i not in self.careful:
            p = None if careful_only else self.best_probe(i)
            if p is not None and p.q75_ms <= budget:
                return True
            if p is not None and p.q25_ms > budget:
                return False
            self.careful[i] = self.measure([self.grid[i][1]], True)[0]  # near the boundary: measure longer
        return self.best_probe(i).median_ms <= budget

    def bisect(self, lo: int, hi: int, budget: float, careful_only: bool = False) -> tuple[int, int]:
        """Adjacent (last meeting, first missing) indices in [lo, hi], given lo meets and hi misses."""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.meets(mid, budget, careful_only) else (lo, mid)
        return lo, hi

    def search_from(self, lo: int, budget: float, careful_only: bool = False) -> tuple[int, int | None]:
        """Bisection between ``lo`` (meets) and the top of the range; (top, None) when the top meets."""
        last = len(self.grid) - 1
        if self.meets(last, budget, careful_only):
            return last, None
        return self.bisect(lo, last, budget, careful_only)

    def verify(self, indices: list[int]) -> list[Probe]:
        """Fresh careful probes of ``indices``, measured together."""
        probes = self.measure([self.grid[i][1] for i in indices], True)
        self.verified.update(zip(indices, probes, strict=True))
        return probes

    def rung(self, budget: float, max_rounds: int) -> Rung:
        grid, last = self.grid, len(self.grid) - 1
        if not self.meets(0, budget):
            if 0 not in self.verified:
                self.verify([0])  # call it impossible only on a fresh careful measurement
            if self.verified[0].median_ms > budget:
                return Rung(budget, "impossible", next_phi=grid[0][0], next_probe=self.verified[0],
                            note=f"the smallest variant (phi {grid[0][0]:g}) measures "
                                 f"{self.verified[0].median_ms:.3g} ms")
        lo, hi = self.search_from(0, budget)
        best: int | None = None
        for _ in range(max_rounds):
            probes = self.verify([lo] if hi is None else [lo, hi])
            if probes[0].median_ms <= budget:
                best = lo
                if hi is None or probes[1].median_ms > budget:
                    break
                lo, hi = self.search_from(hi, budget, careful_only=True)  # the next step meets too: go above
            else:
                floor = 0 if best is None else best
                if lo == floor or not self.meets(floor, budget, careful_only=True):
                    break
                lo, hi = self.bisect(floor, lo, budget, careful_only=True)  # below the miss, careful only
                if lo == best:
                    break
        if best is None:
            return Rung(budget, "impossible", next_phi=grid[lo][0], next_probe=self.best_probe(lo),
                        note=f"no variant verified within the budget (phi {grid[lo][0]:g} measured "
                             f"{self.best_probe(lo).median_ms:.3g} ms)")
        search = self.careful.get(best) or self.quick.get(best) or self.verified[best]
        if best == last:
            return Rung(budget, "capped", grid[best][0], grid[best][1], search, self.verified[best],
                        note=f"the largest variant in range (phi {grid[best][0]:g}) meets it")
        nxt = self.best_probe(best + 1)
        note = "" if nxt.median_ms > budget else "the next step was not confirmed to miss the budget"
        return Rung(budget, "ok", grid[best][0], grid[best][1], search, self.verified[best],
                    grid[best + 1][0], nxt, note)


# ---- families ----------------------------------------------------------------------------------


@dataclass
class Member:
    """One member of a compound-scaled family, with its cost."""

    phi: float
    genotype: Genotype
    params: int
    macs: int
    latency: Probe | None = None




def scale_family(genotype: Genotype, coeffs: Coefficients, phis: Sequence[float], name: str,
                 measure: Measure | None = None) -> list[Member]:
    """The variants at ``phis`` named ``<name>_b<phi>``, with params, MACs and (quick) latency."""
    variants = [compound_scale(genotype, coeffs, phi, name=f"{name}_b{phi:g}") for phi in phis]
    probes = measure(variants, False) if measure is not None else [None] * len(variants)
    return [Member(phi, v, *params_and_macs(v), p) for phi, v, p in zip(phis, variants, probes, strict=True)]
