"""The contract of the strategies written here: a sampler that makes a *plan* in ``before_trial``.

Both plan samplers (:mod:`.evolution`, :mod:`.surrogate.sampler`) are define-by-run (the parameters a
trial has depend on its earlier choices) and keep no search state of their own: each trial re-reads the
completed trials of the study, so a study resumed from RDB storage continues where it stopped.
``sample_independent`` follows the plan and samples at random any parameter the plan does not have (a
branch the parent never took) or whose value no longer fits its distribution.

Given the search space, ``random`` (this class on its own) and the random trials of both draw a network
the study does not hold yet (:mod:`.held`) from a generator seeded by the strategy's seed and the
trial's number: a resumed run or a second worker on the same study, whatever its seed, never proposes a
network again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.strategies.held import held_networks

PARENT_ATTR = "strategy:parent"
MUTATED_ATTR = "strategy:mutated"
PLAN_ATTR = "strategy:plan"  # the full set of values a plan asked for


# --- plain helpers over trials and distributions ---------------------------------------------------

def completed_trials(study: Study) -> list[FrozenTrial]:
    """Completed trials of the space in order of number; failed, pruned and running trials are ignored, and
    so are trials without params (networks scored from outside the space, such as starting points)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted((t for t in trials if t.values is not None and t.params), key=lambda t: t.number)


def scored_trials(study: Study) -> list[FrozenTrial]:
    """The completed trials of the space and those a pruner stopped at a check (they reported an accuracy
    before they stopped), in order of number; a candidate rejected before training reported nothing and
    is left out (its cost is what a strategy learns from it)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    kept = [t for t in trials if t.params and (t.values is not None if t.state == TrialState.COMPLETE
                                                else bool(t.intermediate_values))]
    return sorted(kept, key=lambda t: t.number)


def trial_scores(study: Study, trials: Sequence[FrozenTrial]) -> np.ndarray:
    """Larger-is-better scores of ``trials`` (:func:`scored_trials`) on the first objective. A trial stopped
    early ranks below every completed one (it was below the pruner's cut where it stopped, as Optuna's TPE
    ranks pruned trials); among those, a later check first, then a higher accuracy there."""
    sign = objective_signs(study)[0]
    complete = [t.values[0] * sign for t in trials if t.state == TrialState.COMPLETE]
    floor = min(complete, default=0.0) - 1.0
    last_check = max((max(t.intermediate_values) for t in trials if t.state != TrialState.COMPLETE), default=0)
    scores = []
    for t in trials:
        if t.state == TrialState.COMPLETE:
            scores.append(t.values[0] * sign)
            continue
        check = max(t.intermediate_values)
        value = t.intermediate_values[check] * sign  # an accuracy: within [-1, 1]
        scores.append(floor - 3.0 * (last_check - check) + value - 1.0)
    return np.array(scores, dtype=float)


def objective_signs(study: Study) -> np.ndarray:
    """+1 per maximised objective, -1 per minimised one: ``values * signs`` is larger-is-better."""
    return np.array([1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in study.directions])


def _fits(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def seen_points(study: Study) -> set:
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

class PlanSampler(BaseSampler):
    """Chooses a full plan of values in ``before_trial``; random for whatever the plan lacks.

    A subclass writes :meth:`plan`, asked once the study has ``n_startup`` completed trials; until then,
    and whenever it plans nothing, a trial is a random network the study does not hold yet. As a
    strategy of its own (``random``) every plan is such a random network.
    """

    learns_from_stopped = False  # True: ``done`` holds the trials a pruner stopped too (:func:`scored_trials`)

    def __init__(self, seed: int | None = None, space: Any = None, n_startup: int = 0) -> None:
        self._seed = seed
        self._space = space
        self.n_startup = n_startup
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        self._plans: dict[int, dict[str, Any]] = {}

    def plan(self, study: Study, trial: FrozenTrial,
             done: list[FrozenTrial]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(values to follow, system attributes to record on the trial), given the completed trials
        ``done`` (and those stopped early, where :attr:`learns_from_stopped`); an empty plan = a random trial."""
        return {}, {}

    def startup_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        """Values to follow while the study has fewer than ``n_startup`` completed trials; empty = a random
        trial (a subclass may narrow the random draws, e.g. to those likely within a budget)."""
        return {}

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
        done = scored_trials(study) if self.learns_from_stopped else completed_trials(study)
        if len(done) >= self.n_startup:
            values, attrs = self.plan(study, trial, done)
        else:
            values, attrs = self.startup_plan(study, trial), {}
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
