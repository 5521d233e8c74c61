"""Changing and drawing parameter values, shared by evolution and the surrogate.

A continuous or integer value moves by a Gaussian step in the [0, 1] space of its distribution (log
ranges stay log), so one step size fits every parameter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial

from nas.strategies.surrogate.gp import to_unit


def _n_values(dist: BaseDistribution) -> float:
    """How many values ``dist`` holds (``inf`` for a continuous range)."""
    if isinstance(dist, CategoricalDistribution):
        return len(dist.choices)
    if isinstance(dist, FloatDistribution) and dist.step is None:
        return math.inf if dist.high > dist.low else 1
    return int(round((dist.high - dist.low) / (dist.step or 1))) + 1


def _from_unit(dist: Any, u: float) -> Any:
    low, high, u = float(dist.low), float(dist.high), min(max(u, 0.0), 1.0)
    x = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if dist.log else low + u * (high - low)
    step = getattr(dist, "step", None)
    if step is not None:
        x = dist.low + round((x - dist.low) / step) * step
    x = min(max(x, dist.low), dist.high)
    return int(round(x)) if isinstance(dist, optuna.distributions.IntDistribution) else float(x)


def mutate_value(dist: BaseDistribution, value: Any, rng: np.random.RandomState) -> Any:
    """A value of ``dist`` different from ``value``: another choice, or a Gaussian step in [0, 1] space."""
    if isinstance(dist, CategoricalDistribution):
        others = [c for c in dist.choices if c != value]
        return others[rng.randint(len(others))] if others else value
    for _ in range(10):
        new = _from_unit(dist, to_unit(dist, value) + rng.normal(0.0, 0.25))
        if new != value:
            return new
    return _from_unit(dist, rng.uniform())


def random_value(dist: BaseDistribution, rng: np.random.RandomState) -> Any:
    """A value of ``dist`` at random: uniform over the choices, or over its [0, 1] space."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[rng.randint(len(dist.choices))]
    return _from_unit(dist, rng.uniform())


def mutate(trial: FrozenTrial, rng: np.random.RandomState, n: int = 1) -> tuple[dict[str, Any], list[str]]:
    """The params of ``trial`` with ``n`` parameters (among those that can change) changed."""
    params = dict(trial.params)
    names = [k for k, d in trial.distributions.items() if _n_values(d) > 1]
    chosen = [names[i] for i in rng.permutation(len(names))[:n]]
    for name in chosen:
        params[name] = mutate_value(trial.distributions[name], params[name], rng)
    return params, chosen
