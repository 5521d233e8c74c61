"""Where the feasible region is: a trial's recorded cost against the user's budget T.

A search for "the most accurate network within T" gains nothing from candidates far over T, so the
strategies learn the border: Optuna's TPE and NSGA-II through their ``constraints_func`` (a value <= 0
is feasible), the surrogate through a model of cost (:func:`feasibility`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

COST_ATTR = "cost"  # the user attribute a scored trial records its cost under (nas.search.scoring)


@dataclass(frozen=True)
class CostLimit:
    """Optuna's ``constraints_func``: ``cost / limit - 1`` (feasible at <= 0); a trial without a recorded
    cost (it failed before its measurement) counts as feasible, as nothing is known against it."""

    limit: float

    def __call__(self, trial: Any) -> tuple[float]:
        cost = trial.user_attrs.get(COST_ATTR)
        return (0.0,) if cost is None else (float(cost) / self.limit - 1.0,)


def costed(trials: list[Any]) -> list[Any]:
    """The trials that recorded a cost (completed ones, and those rejected or pruned after it)."""
    return [t for t in trials if t.user_attrs.get(COST_ATTR) is not None and t.params]


def feasibility(x_costed: np.ndarray, costs: np.ndarray, x_new: np.ndarray, limit: float,
                ridge: float = 1.0, min_spread: float = 0.05) -> np.ndarray:
    """P(cost <= limit) of each row of ``x_new``: a ridge regression of log cost on the encoded choices
    (a network's latency is close to a sum over its parts, so additive in them), with its residual spread
    (at least ``min_spread`` in log units, the noise of a quick measurement). 1 everywhere while every
    known cost is within the limit: no border has been seen yet."""
    if len(costs) < 2 or bool(np.all(costs <= limit)):
        return np.ones(len(x_new))
    y = np.log(np.maximum(costs, 1e-9))
    mean = float(y.mean())
    gram = x_costed.T @ x_costed + ridge * np.eye(x_costed.shape[1])
    w = np.linalg.solve(gram, x_costed.T @ (y - mean))
    residual = y - mean - x_costed @ w
    spread = max(float(np.sqrt(np.mean(residual**2))), min_spread)
    return ndtr((math.log(limit) - mean - x_new @ w) / spread)
