"""The surrogate strategy's model: a Gaussian process on one-hot / scaled encodings of trial params.

:func:`encode` turns parameter sets into feature rows whose squared distances count differing
categorical choices (so an RBF kernel is a Hamming kernel); :class:`HammingGP` fits rank-normalised
targets and scores candidates by expected improvement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg
import scipy.stats
from optuna.distributions import BaseDistribution, CategoricalDistribution
from scipy.special import ndtr, ndtri


def to_unit(dist: Any, value: float) -> float:
    """A numeric value's position in [0, 1] of its distribution's range (log scale for log ranges)."""
    low, high, x = float(dist.low), float(dist.high), float(value)
    if dist.log:
        low, high, x = math.log(low), math.log(high), math.log(x)
    return 0.0 if high == low else (x - low) / (high - low)


def encode(points: Sequence[dict[str, Any]], space: dict[str, BaseDistribution]) -> np.ndarray:
    """Feature rows: one-hot per categorical, sqrt(2) * [0, 1]-scaled value per number; absent = 0.

    Squared distances are then 2 per differing categorical, so an RBF kernel is a Hamming kernel.
    """
    column: dict[tuple[str, Any], int] = {}
    numeric: dict[str, int] = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            column.update({(name, _hashable(c)): len(column) + len(numeric) + j for j, c in enumerate(dist.choices)})
        else:
            numeric[name] = len(column) + len(numeric)
    x = np.zeros((len(points), len(column) + len(numeric)))
    for i, p in enumerate(points):
        for name, value in p.items():
            if name in numeric:
                x[i, numeric[name]] = math.sqrt(2.0) * min(max(to_unit(space[name], value), 0.0), 1.0)
            else:
                j = column.get((name, _hashable(value)))
                if j is not None:
                    x[i, j] = 1.0
    return x


def _hashable(value: Any) -> Any:
    return (type(value).__name__, value)


class HammingGP:
    """A zero-mean GP on rank-normalised targets, kernel ``exp(-theta * |x - x'|^2 / 2)``.

    ``theta`` and the noise ratio are chosen on a small grid by marginal likelihood, with the signal
    variance profiled out; this costs a handful of Cholesky factorisations of an n x n matrix.
    """

    THETAS = (0.1, 0.2, 0.4, 0.8, 1.6)
    NOISES = (1e-4, 1e-2, 1e-1)

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = x
        z = ndtri((scipy.stats.rankdata(y) - 0.5) / len(y))  # Gaussian copula: robust to a long tail
        d2 = _sq_dist(x, x)
        best = -math.inf
        for theta in self.THETAS:
            base = np.exp(-0.5 * theta * d2)
            for noise in self.NOISES:
                try:
                    chol = np.linalg.cholesky(base + noise * np.eye(len(x)))
                except np.linalg.LinAlgError:
                    continue
                alpha = _chol_solve(chol, z)
                scale2 = max(float(z @ alpha) / len(z), 1e-12)
                loglik = -0.5 * len(z) * math.log(scale2) - float(np.log(np.diag(chol)).sum())
                if loglik > best:
                    best, self.theta, self.chol, self.alpha, self.scale2 = loglik, theta, chol, alpha, scale2
        self.z_best = float(z.max())
        self.y_sorted = np.sort(np.asarray(y, dtype=float))

    def predict(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation at ``xs``, on the rank-normalised scale."""
        ks = np.exp(-0.5 * self.theta * _sq_dist(xs, self.x))
        v = scipy.linalg.solve_triangular(self.chol, ks.T, lower=True)
        return ks @ self.alpha, np.sqrt(np.maximum(self.scale2 * (1.0 - (v * v).sum(0)), 1e-12))

    def expected_improvement(self, xs: np.ndarray) -> np.ndarray:
        mean, sd = self.predict(xs)
        u = (mean - self.z_best) / sd
        return sd * (u * ndtr(u) + np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi))

    def probability_above(self, xs: np.ndarray, threshold: float) -> np.ndarray:
        """P(target > ``threshold``) at ``xs``; the threshold goes through the same rank transform as the
        targets (the share of training targets at or below it)."""
        n = len(self.y_sorted)
        share = (np.searchsorted(self.y_sorted, threshold, side="right") + 0.5) / (n + 1)
        mean, sd = self.predict(xs)
        return ndtr((mean - float(ndtri(share))) / sd)


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def _chol_solve(chol: np.ndarray, z: np.ndarray) -> np.ndarray:
    return scipy.linalg.cho_solve((chol, True), z)
