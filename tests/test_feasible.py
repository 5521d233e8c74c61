"""A constrained search learns where the budget T lies: the hard reward's limit, Optuna's constraints, the
surrogate's feasibility model."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from nas.search.reward import make_reward
from nas.strategies import make_sampler
from nas.strategies.feasible import CostLimit, feasibility
from nas.strategies.plan import PARENT_ATTR
from nas.strategies.surrogate.gp import encode

optuna.logging.set_verbosity(optuna.logging.ERROR)


class _Trial:
    def __init__(self, **attrs) -> None:
        self.user_attrs = attrs


def test_the_hard_reward_is_the_default_and_holds_candidates_to_t() -> None:
    from nas.config import SearchConfig

    assert SearchConfig().reward == "mnasnet-hard" and SearchConfig().reject_factor == 1.1
    hard = make_reward("mnasnet-hard", 20.0, reject_factor=1.1)
    assert hard.cost_limit == 20.0 and make_reward("mnasnet", 20.0).cost_limit is None
    assert hard(0.8, 4.0) == hard(0.8, 20.0) == 0.8  # no bonus for being faster than T
    assert hard(0.8, 21.0) == pytest.approx(0.8 * 20 / 21)
    assert not hard.rejects(22.0) and hard.rejects(22.1)  # beyond T by more than 10%: not trained


def test_the_constraint_is_cost_over_limit_minus_one_and_unknown_costs_count_as_feasible() -> None:
    limit = CostLimit(20.0)
    assert limit(_Trial(cost=30.0)) == (0.5,) and limit(_Trial(cost=10.0)) == (-0.5,)
    assert limit(_Trial()) == (0.0,)


@pytest.mark.parametrize("name", ["tpe", "nsga2"])
def test_optuna_samplers_record_each_trials_constraint(name: str) -> None:
    study = optuna.create_study(sampler=make_sampler(name, 0, cost_limit=20.0))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_categorical("x", [1, 2, 3, 4])
        trial.set_user_attr("cost", 10.0 * x)
        return float(x)

    study.optimize(objective, n_trials=6)
    for t in study.trials:
        assert t.system_attrs["constraints"] == (10.0 * t.params["x"] / 20.0 - 1.0,)


def test_feasibility_is_high_where_known_costs_are_within_the_limit_and_low_beyond() -> None:
    space = {"x": optuna.distributions.CategoricalDistribution([0, 1, 2, 3]),
             "y": optuna.distributions.CategoricalDistribution([0, 1, 2, 3])}
    points = [{"x": x, "y": y} for x in range(4) for y in range(3)]  # y = 3 never seen
    costs = np.array([10.0 * (1 + p["x"]) for p in points])  # 10, 20, 30, 40 by x
    new = [{"x": x, "y": 3} for x in range(4)]
    p = feasibility(encode(points, space), costs, encode(new, space), limit=25.0)
    assert p[0] > 0.8 and p[1] > 0.6 and p[2] < 0.4 and p[3] < 0.2
    assert np.all(np.diff(p) < 0)
    assert np.all(feasibility(encode(points, space), costs, encode(new, space), limit=100.0) == 1.0)


def _proposals_within(cost_limit: float | None, seed: int) -> float:
    """A 2-parameter space where accuracy grows with x and cost is 10 (x + 1); candidates over the budget 35
    are rejected before training (pruned, as the hard reward does), so the accuracy model never sees
    them. The share of all 40 queries within the budget, start-up included (with a budget, the start-up
    draws too go where the cost model holds them likely within it)."""
    study = optuna.create_study(direction="maximize",
                                sampler=make_sampler("surrogate", seed, n_startup=8, cost_limit=cost_limit))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_categorical("x", list(range(8)))
        y = trial.suggest_categorical("y", list(range(8)))
        trial.set_user_attr("cost", 10.0 * (x + 1))
        if 10.0 * (x + 1) > 35.0:
            raise optuna.TrialPruned("rejected before training")
        return 0.5 + 0.05 * x + 0.01 * y

    study.optimize(objective, n_trials=40)
    assert sum(PARENT_ATTR in t.system_attrs for t in study.trials) >= 10  # the surrogate did plan
    return sum(10.0 * (t.params["x"] + 1) <= 35.0 for t in study.trials) / len(study.trials)


def test_the_surrogate_spends_its_proposals_within_the_budget_once_it_knows_the_border() -> None:
    with_limit = np.mean([_proposals_within(35.0, seed) for seed in range(3)])
    without = np.mean([_proposals_within(None, seed) for seed in range(3)])
    # measured: 0.39 of the queries within the budget with the feasibility model, 0.28 without (24 of the 64
    # points are within it, so at most 0.6); once that small region has no improvement left, expected
    # improvement * P(feasible) explores beyond it
    assert with_limit > without + 0.08, (with_limit, without)


def test_start_up_draws_go_where_the_cost_model_holds_them_within_the_budget() -> None:
    """Costs 10 (x + 1) seen for every x, budget 35: the start-up draws are x <= 2 only (P(x = 2) ~ 0.75,
    P(x = 3) ~ 0.07); with no cost over the budget seen yet, it draws at random (an empty plan)."""
    dists = {"x": optuna.distributions.CategoricalDistribution(list(range(8))),
             "y": optuna.distributions.CategoricalDistribution(list(range(8)))}
    study = optuna.create_study(direction="maximize")
    for x in range(8):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={"x": x, "y": 0},
                                                  distributions=dists, user_attrs={"cost": 10.0 * (x + 1)}))
    sampler = make_sampler("surrogate", 0, n_startup=8, cost_limit=35.0)
    draws = [sampler.startup_plan(study, None) for _ in range(30)]
    assert all(d["x"] <= 2 for d in draws) and len({(d["x"], d["y"]) for d in draws}) > 5
    assert make_sampler("surrogate", 0, n_startup=8, cost_limit=1000.0).startup_plan(study, None) == {}
