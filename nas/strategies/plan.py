"""Search strategies as Optuna samplers, behind one small contract: ``make_sampler(name, seed)``.

``random``, ``tpe`` and ``nsga2`` are Optuna's own samplers. Two more are written here, both on
the define-by-run model (the parameters a trial has depend on its earlier choices):

- ``evolution``: regularized evolution (Real et al. 2019). The population is the most recent
  ``population`` completed trials; the parent is the best of ``tournament`` drawn from it at random;
  the child copies the parent and changes exactly one parameter (the oldest member leaves the
  population as the child enters it). Until the population is full, trials are random.
- ``surrogate``: surrogate-guided evolution. After ``n_startup`` random trials, a Gaussian process
  on a Hamming / one-hot kernel is fitted to all completed trials; the candidates are every
  one-parameter mutation of the ``population`` best trials, two-parameter mutations and random
  points; the unseen candidate of highest expected improvement is the next trial. The targets are
  rank-normalised (a Gaussian copula) so that a long tail of broken candidates does not flatten the
  differences at the top. In a conditional space a mutant that switches a branch keeps the parent's
  stale sub-parameters in its encoding; the new branch's parameters are sampled at random.

Both keep no search state of their own: each trial re-reads the completed trials of the study, so a
study resumed from RDB storage continues where it stopped. Given the search space, ``random`` and
the random trials of both draw a network the study does not hold yet (finished, pruned or running)
from a generator seeded by the strategy's seed and the trial's number: a resumed run or a second
worker on the same study, whatever its seed, never proposes a network again. The chosen values are a *plan* made in
``before_trial``; ``sample_independent`` follows it and samples at random any parameter the plan
does not have (a branch the parent never took) or whose value no longer fits its distribution.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.strategies.surrogate.gp import HammingGP, encode, to_unit
from searchspace.errors import NasError

STRATEGIES: tuple[str, ...] = ("random", "tpe", "nsga2", "evolution", "surrogate")
SINGLE_OBJECTIVE_ONLY: tuple[str, ...] = ("surrogate",)
PARENT_ATTR = "strategy:parent"
MUTATED_ATTR = "strategy:mutated"
PLAN_ATTR = "strategy:plan"  # the full set of values a plan asked for


def make_sampler(name: str, seed: int | None = None, *, population: int = 10, tournament: int = 3,
                 n_startup: int = 10, multi_objective: bool = False, space: Any = None) -> BaseSampler:
    """The sampler of strategy ``name``; raises ``NasError`` for an unknown name or a bad setting.

    ``population``: evolution's population, NSGA-II's population size, the surrogate's number of parents.
    ``tournament``: evolution's sample size. ``n_startup``: random trials before TPE / the surrogate start.
    ``multi_objective``: the study has several objectives (the surrogate refuses it).
    ``space``: the search space (a ``searchspace.space.Space``); with it, random trials are networks the
    study does not hold yet (see the module docstring).
    """
    if name not in STRATEGIES:
        raise NasError(f"strategy: {name!r} is not one of {', '.join(STRATEGIES)}")
    if population < 2 or tournament < 1 or tournament > population or n_startup < 0:
        raise NasError(f"strategy: need population >= 2, 1 <= tournament <= population and n_startup >= 0, "
                       f"got population={population}, tournament={tournament}, n_startup={n_startup}")
    if multi_objective and name in SINGLE_OBJECTIVE_ONLY:
        allowed = ", ".join(s for s in STRATEGIES if s not in SINGLE_OBJECTIVE_ONLY)
        raise NasError(f"strategy: {name!r} is single-objective; for multi-objective use one of {allowed}")
    if name == "random":
        return PlanSampler(seed, space) if space is not None else RandomSampler(seed=seed)
    if name == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return TPESampler(seed=seed, n_startup_trials=n_startup, multivariate=True, group=True)
    if name == "nsga2":
        return NSGAIISampler(seed=seed, population_size=population)
    if name == "evolution":
        return EvolutionSampler(seed=seed, population=population, tournament=tournament, space=space)
    return SurrogateSampler(seed=seed, parents=population, n_startup=max(n_startup, 2), space=space)


# --- plain helpers over trials and distributions ---------------------------------------------------

def completed_trials(study: Study) -> list[FrozenTrial]:
    """Completed trials in order of number; failed, pruned and running trials are ignored."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted((t for t in trials if t.values is not None), key=lambda t: t.number)


def _signs(study: Study) -> np.ndarray:
    """+1 per maximised objective, -1 per minimised one: ``values * signs`` is larger-is-better."""
    return np.array([1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in study.directions])


def _dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a >= b) and np.any(a > b))


def best_of(trials: Sequence[FrozenTrial], signs: np.ndarray, rng: np.random.RandomState) -> FrozenTrial:
    """The best trial (single objective) or a random non-dominated one (multi-objective)."""
    scores = [np.asarray(t.values) * signs for t in trials]
    if len(signs) == 1:
        return trials[int(np.argmax([s[0] for s in scores]))]
    front = [i for i, s in enumerate(scores) if not any(_dominates(o, s) for o in scores)]
    return trials[front[rng.randint(len(front))]]


def _fits(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


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


def mutate(trial: FrozenTrial, rng: np.random.RandomState, n: int = 1) -> tuple[dict[str, Any], list[str]]:
    """The params of ``trial`` with ``n`` parameters (among those that can change) changed."""
    params = dict(trial.params)
    names = [k for k, d in trial.distributions.items() if _n_values(d) > 1]
    chosen = [names[i] for i in rng.permutation(len(names))[:n]]
    for name in chosen:
        params[name] = mutate_value(trial.distributions[name], params[name], rng)
    return params, chosen


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


def _seen_points(study: Study) -> set:
    """Every point already asked (pruned, failed and running ones too): never worth asking again."""
    seen = set()
    for t in study.get_trials(deepcopy=False):
        if t.params:
            seen.add(params_key(t.params))
        if PLAN_ATTR in t.system_attrs:
            seen.add(params_key(t.system_attrs[PLAN_ATTR]))
    return seen


def params_key(params: dict[str, Any]) -> frozenset:
    """A hashable key of a parameter set, for telling seen points from new ones."""
    return frozenset(params.items())  # Optuna's choices are None, bool, int, float or str: hashable


# --- the plan-following base sampler ----------------------------------------------------------------

def held_networks(study: Study) -> set[str]:
    """Genotype hashes of the networks the study holds: finished, pruned or running (failed ones may be retried)."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return {t.user_attrs["hash"] for t in study.get_trials(deepcopy=False, states=states) if "hash" in t.user_attrs}


class PlanSampler(BaseSampler):
    """Chooses a full plan of values in ``before_trial``; random for whatever the plan lacks.

    As a strategy of its own (``random``) every plan is a random network the study does not hold yet.
    """

    def __init__(self, seed: int | None = None, space: Any = None) -> None:
        self._seed = seed
        self._space = space
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        self._plans: dict[int, dict[str, Any]] = {}

    def plan(self, study: Study, trial: FrozenTrial) -> tuple[dict[str, Any], dict[str, Any]]:
        """(values to follow, system attributes to record on the trial); empty plan = random trial."""
        return {}, {}

    def unseen_random_plan(self, study: Study, trial: FrozenTrial, tries: int = 200) -> dict[str, Any]:
        """The params of a random network the study does not hold, drawn with (seed, trial number)."""
        if self._space is None:
            return {}
        from searchspace.space import RandomTrial

        rng = random.Random(((self._seed or 0) * 1_000_003 + trial.number) % 2**32)
        held = held_networks(study)
        for _ in range(tries):
            draw = RandomTrial(rng)
            if self._space.sample(draw).hash() not in held:
                break
        return draw.params

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        values, attrs = self.plan(study, trial)
        if not values:
            values = self.unseen_random_plan(study, trial)
        if values:
            self._plans[trial._trial_id] = values
            # the plan is remembered as seen too: when it switches a branch (a block type), the params
            # the trial really gets differ from it, and an unrecorded plan would look new forever
            attrs = {**attrs, PLAN_ATTR: values}
        for key, value in attrs.items():
            study._storage.set_trial_system_attr(trial._trial_id, key, value)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        planned = self._plans.get(trial._trial_id, {})
        if param_name in planned and _fits(param_distribution, planned[param_name]):
            return planned[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._plans.pop(trial._trial_id, None)

    def reseed_rng(self) -> None:
        self._rng = np.random.RandomState()
        self._random.reseed_rng()


class EvolutionSampler(PlanSampler):
    """Regularized (ageing) evolution: tournament parent from the last ``population`` trials, one mutation."""

    def __init__(self, seed: int | None = None, population: int = 10, tournament: int = 3, space: Any = None) -> None:
        super().__init__(seed, space)
        self.population = population
        self.tournament = tournament

    def plan(self, study: Study, trial: FrozenTrial) -> tuple[dict[str, Any], dict[str, Any]]:
        done = completed_trials(study)
        if len(done) < self.population:
            return {}, {}
        alive = done[-self.population:]
        picked = self._rng.choice(len(alive), size=self.tournament, replace=False)
        parent = best_of([alive[i] for i in sorted(picked)], _signs(study), self._rng)
        values, changed = unseen_mutant(parent, _seen_points(study), self._rng)
        return values, {PARENT_ATTR: parent.number, MUTATED_ATTR: changed}


class SurrogateSampler(PlanSampler):
    """Evolution guided by a Gaussian process: the unseen mutant of highest expected improvement."""

    def __init__(self, seed: int | None = None, parents: int = 10, n_startup: int = 10,
                 n_random: int = 100, n_double: int = 100, space: Any = None) -> None:
        super().__init__(seed, space)
        self.parents = parents
        self.n_startup = n_startup
        self.n_random = n_random
        self.n_double = n_double

    def plan(self, study: Study, trial: FrozenTrial) -> tuple[dict[str, Any], dict[str, Any]]:
        done = completed_trials(study)
        if len(done) < self.n_startup:
            return {}, {}
        y = np.array([t.values[0] for t in done]) * _signs(study)[0]
        space = _union_space(done)
        # every point already asked counts as seen (pruned, failed and running ones too), so a
        # candidate stopped early by a pruner is never proposed again
        seen = _seen_points(study)
        top = [done[i] for i in np.argsort(-y, kind="stable")[: self.parents]]
        candidates, origin = self._candidates(done, top, space, seen)
        if not candidates:
            values, changed = mutate(top[0], self._rng)
            return values, {PARENT_ATTR: top[0].number, MUTATED_ATTR: changed}
        gp = HammingGP(encode([t.params for t in done], space), y)
        ei = gp.expected_improvement(encode(candidates, space))
        best = int(np.argmax(ei))
        return candidates[best], {PARENT_ATTR: origin[best]}

    def _candidates(self, done: list[FrozenTrial], top: list[FrozenTrial], space: dict[str, BaseDistribution],
                    seen: set) -> tuple[list[dict[str, Any]], list[int]]:
        """Unseen one-parameter mutants of ``top``, two-parameter mutants and random points."""
        out: dict[tuple, tuple[dict[str, Any], int]] = {}

        def add(params: dict[str, Any], parent: int) -> None:
            key = params_key(params)
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
            add({k: _random_value(space[k], self._rng) for k in t.params}, -1)
        return [p for p, _ in out.values()], [o for _, o in out.values()]


def _random_value(dist: BaseDistribution, rng: np.random.RandomState) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[rng.randint(len(dist.choices))]
    return _from_unit(dist, rng.uniform())


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
