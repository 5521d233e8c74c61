"""Rank statistics of an audit (scipy): how well each score orders the candidates as the reference does.

Every score is compared with the reference accuracy over the candidates both have (failed trainings
leave a candidate out of that comparison): Kendall tau-b and Spearman rho, and how many of the
reference's best ``top`` candidates the score also puts in its best ``top``. Between two seeds of the
same proxy setting, Kendall tau is the noise ceiling: no proxy agrees with a reference better than
with itself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau, spearmanr

from nas.auditing.config import REFERENCE_NAME
from predictors.zero_cost.scores import VOTE_DEFAULT, vote

NAN = float("nan")
VOTE = "zero-cost vote"
BASELINE = "baseline"
CURVE = "curve area"  # a setting's score from the mean accuracy over its checks, not the last one
SPEED = "training speed"  # minus its mean training loss over the last epoch


@dataclass
class ScoreRow:
    """One line of the audit's table."""

    score: str                   # e.g. "default, seed 0", "default, mean of 2 seeds", "macs"
    setting: str                 # the proxy setting's name, "baseline" or "reference"
    tau: float = NAN             # Kendall tau-b against the reference
    spearman: float = NAN        # Spearman rho against the reference
    top: int | None = None       # of the reference's best K, how many this score also ranks in its best K
                                 # (None with K or fewer candidates compared)
    seconds: float | None = None  # per candidate
    n: int = 0                   # candidates compared


@dataclass
class SeedNoise:
    """How much one seed moves a candidate's proxy accuracy (two seeds or more)."""

    ceiling: float      # mean pairwise Kendall tau between seeds
    mean_points: float  # mean |accuracy difference| between two seeds, in points (x100)
    max_points: float
    n: int


def _pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def agreement(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, int]:
    """(Kendall tau-b, Spearman rho, pairs compared); NaN with fewer than 3 pairs or a constant side."""
    a, b = _pairs(x, y)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return NAN, NAN, len(a)
    return float(kendalltau(a, b).statistic), float(spearmanr(a, b).statistic), len(a)


def top_overlap(x: Sequence[float], y: Sequence[float], k: int) -> int:
    """How many of ``y``'s best ``k`` are among ``x``'s best ``k`` (ties: the earlier candidate first)."""
    a, b = _pairs(x, y)
    k = min(k, len(a))
    best = lambda v: set(sorted(range(len(v)), key=lambda i: (-v[i], i))[:k])  # noqa: E731
    return len(best(a) & best(b))


def compare(score: str, setting: str, values: Sequence[float], reference: Sequence[float], top: int,
            seconds: float | None) -> ScoreRow:
    """A score's row: its agreement with the reference."""
    tau, rho, n = agreement(values, reference)
    return ScoreRow(score, setting, tau, rho, top_overlap(values, reference, top) if n > top else None, seconds, n)


def seed_mean(per_seed: Sequence[Sequence[float]]) -> list[float]:
    """Per candidate, the mean accuracy over the seeds (NaN if any seed's training failed)."""
    return [float(np.mean(v)) if all(math.isfinite(a) for a in v) else NAN for v in zip(*per_seed, strict=True)]


def seed_noise(per_seed: Sequence[Sequence[float]]) -> SeedNoise | None:
    """Seed-to-seed agreement of one setting; None with a single seed."""
    if len(per_seed) < 2:
        return None
    taus, diffs, n = [], [], 0
    for x, y in itertools.combinations(per_seed, 2):
        tau, _, count = agreement(x, y)
        taus.append(tau)
        a, b = _pairs(x, y)
        diffs += list(np.abs(a - b) * 100)
        n = max(n, count)
    if not diffs:
        return SeedNoise(NAN, NAN, NAN, 0)
    return SeedNoise(float(np.mean(taus)), float(np.mean(diffs)), float(np.max(diffs)), n)


def setting_rows(name: str, per_seed: Sequence[Sequence[float]], reference: Sequence[float], top: int,
                 seconds: Sequence[float | None]) -> list[ScoreRow]:
    """Each seed, the seed mean (with two seeds or more) and the seed-to-seed noise ceiling."""
    rows = [compare(f"{name}, seed {i}", name, acc, reference, top, seconds[i]) for i, acc in enumerate(per_seed)]
    if len(per_seed) > 1:
        total = None if any(s is None for s in seconds) else float(sum(seconds))
        rows.append(compare(f"{name}, mean of {len(per_seed)} seeds", name, seed_mean(per_seed), reference, top,
                            total))
        noise = seed_noise(per_seed)
        rows.append(ScoreRow(f"{name}, seed vs seed (noise ceiling)", name, noise.ceiling, NAN, None, None, noise.n))
    return rows


def reference_rows(per_seed: Sequence[Sequence[float]], top: int, seconds: Sequence[float | None]) -> list[ScoreRow]:
    """The reference: each seed against the others' mean (one seed: against itself), and with two seeds or
    more its seed-to-seed tau, the ceiling no score can be expected to pass."""
    if len(per_seed) == 1:
        return [compare(REFERENCE_NAME, REFERENCE_NAME, per_seed[0], per_seed[0], top, seconds[0])]
    rows = [compare(f"{REFERENCE_NAME}, seed {i} vs the other seeds", REFERENCE_NAME, acc,
                    seed_mean([s for j, s in enumerate(per_seed) if j != i]), top, seconds[i])
            for i, acc in enumerate(per_seed)]
    noise = seed_noise(per_seed)
    rows.append(ScoreRow(f"{REFERENCE_NAME}, seed vs seed (the ceiling)", REFERENCE_NAME, noise.ceiling, NAN, None, None,
                         noise.n))
    return rows


def baseline_rows(free: Mapping[str, Sequence[float]], reference: Sequence[float], top: int,
                  seconds: float | None) -> list[ScoreRow]:
    """MACs, params, each zero-cost score and their vote (Abdelfattah et al.'s majority vote of
    synflow, jacob_cov and snip) against the reference; zero-cost seconds are per candidate."""
    rows = []
    for name, values in free.items():
        rows.append(compare(name, BASELINE, values, reference, top, None if name in ("macs", "params") else seconds))
    if all(name in free for name in VOTE_DEFAULT) and len(reference):
        ranks = vote({name: free[name] for name in VOTE_DEFAULT}, "majority")
        rows.append(compare(VOTE, BASELINE, list(ranks), reference, top, seconds))
    return rows
