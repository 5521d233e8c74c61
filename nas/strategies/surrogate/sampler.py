"""Surrogate-guided evolution: the unseen candidate of highest expected improvement under a GP.

After ``n_startup`` random trials, a Gaussian process on a Hamming / one-hot kernel (:mod:`.gp`) is fitted to
all completed trials and those a pruner stopped (ranked below them); the candidates are every one-parameter
mutation of the ``parents`` best trials, two-parameter mutations and random points. The targets are
rank-normalised (a Gaussian copula) so that a long tail of broken candidates does not flatten the differences
at the top. In a conditional space a mutant that switches a branch keeps the parent's stale sub-parameters in
its encoding; the new branch's parameters are sampled at random (:class:`nas.strategies.plan.PlanSampler`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.strategies import plan as contract
from nas.strategies.feasible import COST_ATTR, costed, feasibility
from nas.strategies.mutation import mutate, mutate_value, random_value
from nas.strategies.surrogate.gp import HammingGP, encode


class SurrogateSampler(contract.PlanSampler):
    """Evolution guided by a Gaussian process: the unseen mutant of highest expected improvement."""

    learns_from_stopped = True  # a candidate the pruner stopped is data: below the completed ones

    def __init__(self, seed: int | None = None, parents: int = 10, n_startup: int = 10,
                 n_random: int = 100, n_double: int = 100, space: Any = None, cost_limit: float | None = None) -> None:
        super().__init__(seed, space, n_startup=n_startup)
        self.parents = parents
        self.n_random = n_random
        self.n_double = n_double
        self.cost_limit = cost_limit  # with a budget: improvement weighted by P(cost <= limit)

    def plan(self, study: Study, trial: FrozenTrial,
             done: list[FrozenTrial]) -> tuple[dict[str, Any], dict[str, Any]]:
        y = contract.trial_scores(study, done)
        space = _union_space(done)
        # every point already asked counts as seen (pruned, failed and running ones too), so a
        # candidate stopped early by a pruner is never proposed again
        seen = contract.seen_points(study)
        top = [done[i] for i in np.argsort(-y, kind="stable")[: self.parents]]
        candidates, origin = self._candidates(done, top, space, seen)
        if not candidates:
            values, changed = mutate(top[0], self._rng)
            return values, {contract.PARENT_ATTR: top[0].number, contract.MUTATED_ATTR: changed}
        gp = HammingGP(encode([t.params for t in done], space), y)
        ei = gp.expected_improvement(encode(candidates, space))
        if self.cost_limit is not None:
            ei = ei * self._feasible(study, candidates)
        best = int(np.argmax(ei))
        return candidates[best], {contract.PARENT_ATTR: origin[best]}

    def startup_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        """With a budget, once a cost over it has been seen: a random point the cost model holds likely
        within it (P >= 0.5; a plain random one when none is: an additive model extrapolates badly to values
        it has not seen, so its likeliest guess may well be over). A tight budget rejects most random
        networks, and the surrogate only starts once ``n_startup`` of them completed: without this, its
        whole query budget could go on random draws far over T."""
        if self.cost_limit is None:
            return {}
        known = costed(study.get_trials(deepcopy=False))
        if len(known) < 2 or all(float(t.user_attrs[COST_ATTR]) <= self.cost_limit for t in known):
            return {}
        seen = contract.seen_points(study)
        space = _union_space(known)
        pool = []
        for _ in range(self.n_random):
            shape = known[self._rng.randint(len(known))]
            point = {k: random_value(space[k], self._rng) for k in shape.params}
            if contract.params_key(point) not in seen:
                pool.append(point)
        if not pool:
            return {}
        p = self._feasible(study, pool)
        likely = np.flatnonzero(p >= 0.5)
        return pool[int(self._rng.choice(likely))] if len(likely) else {}

    def _feasible(self, study: Study, candidates: list[dict[str, Any]]) -> np.ndarray:
        """P(cost within the limit) of each candidate, learned from every trial that recorded a cost."""
        known = costed(study.get_trials(deepcopy=False))
        space = _union_space(known)
        costs = np.array([float(t.user_attrs[COST_ATTR]) for t in known])
        return feasibility(encode([t.params for t in known], space), costs, encode(candidates, space),
                           self.cost_limit)

    def _candidates(self, done: list[FrozenTrial], top: list[FrozenTrial], space: dict[str, BaseDistribution],
                    seen: set) -> tuple[list[dict[str, Any]], list[int]]:
        """Unseen one-parameter mutants of ``top``, two-parameter mutants and random points."""
        out: dict[tuple, tuple[dict[str, Any], int]] = {}

        def add(params: dict[str, Any], parent: int) -> None:
            key = contract.params_key(params)
            if key not in seen and key not in out:
                out[key] = (params, parent)

        for t in top:
            for name, dist in t.distributions.items():
                values = (dist.choices if isinstance(dist, CategoricalDistribution)
                          else [mutate_value(dist, t.params[name], self._rng) for _ in range(4)])
                for v in values:
                    add({**t.params, name: v}, t.number)
        for _ in range(self.n_double):
            t = top[self._rng.randint(len(top))]
            add(mutate(t, self._rng, n=2)[0], t.number)
        for _ in range(self.n_random):  # every value new, in the shape (branches) of a random trial
            t = done[self._rng.randint(len(done))]
            add({k: random_value(space[k], self._rng) for k in t.params}, -1)
        return [p for p, _ in out.values()], [o for _, o in out.values()]


def _union_space(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
    """Every parameter any trial has, with its latest distribution (categorical choices merged)."""
    space: dict[str, BaseDistribution] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            old = space.get(name)
            if isinstance(dist, CategoricalDistribution) and isinstance(old, CategoricalDistribution):
                extra = [c for c in old.choices if c not in dist.choices]
                dist = CategoricalDistribution(list(dist.choices) + extra) if extra else dist
            space[name] = dist
    return space
