"""Regularized evolution (Real et al. 2019) as a plan sampler.

The population is the most recent ``population`` completed trials; the parent is the best of
``tournament`` drawn from it at random; the child copies the parent and changes exactly one parameter
(the oldest member leaves the population as the child enters it). Until the population is full, trials
are random (:class:`nas.strategies.plan.PlanSampler`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.strategies.mutation import mutate
from nas.strategies.plan import (  # noqa: E501
    MUTATED_ATTR,
    PARENT_ATTR,
    PlanSampler,
    objective_signs,
    params_key,
    seen_points,
)


def _dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a >= b) and np.any(a > b))


def best_of(trials: Sequence[FrozenTrial], signs: np.ndarray, rng: np.random.RandomState) -> FrozenTrial:
    """The best trial (single objective) or a random non-dominated one (multi-objective)."""
    scores = [np.asarray(t.values) * signs for t in trials]
    if len(signs) == 1:
        return trials[int(np.argmax([s[0] for s in scores]))]
    front = [i for i, s in enumerate(scores) if not any(_dominates(o, s) for o in scores)]
    return trials[front[rng.randint(len(front))]]


def unseen_mutant(parent: FrozenTrial, seen: set, rng: np.random.RandomState,
                  tries: int = 20) -> tuple[dict[str, Any], list[str]]:
    """A mutant of ``parent`` not in ``seen``: one change first, more when those are all taken.

    Falls back to the last mutant tried when every attempt was already seen (a nearly exhausted
    neighbourhood), so the sampler always proposes something.
    """
    values, changed = mutate(parent, rng)
    for attempt in range(tries):
        if params_key(values) not in seen:
            break
        values, changed = mutate(parent, rng, n=1 + attempt // 5)
    return values, changed


class EvolutionSampler(PlanSampler):
    """Regularized (ageing) evolution: tournament parent from the last ``population`` trials, one mutation."""

    def __init__(self, seed: int | None = None, population: int = 10, tournament: int = 3, space: Any = None) -> None:
        super().__init__(seed, space, n_startup=population)
        self.population = population
        self.tournament = tournament

    def plan(self, study: Study, trial: FrozenTrial,
             done: list[FrozenTrial]) -> tuple[dict[str, Any], dict[str, Any]]:
        alive = done[-self.population:]
        picked = self._rng.choice(len(alive), size=self.tournament, replace=False)
        parent = best_of([alive[i] for i in sorted(picked)], objective_signs(study), self._rng)
        values, changed = unseen_mutant(parent, seen_points(study), self._rng)
        return values, {PARENT_ATTR: parent.number, MUTATED_ATTR: changed}
