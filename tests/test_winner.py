"""Choosing the winner (nas.search.winner) from synthetic trials, with injected cost models."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas.search.reward import make_reward
from nas.search.winner import choose_winner
from searchspace import parse_genotype
from tests.search_helpers import FakeCost, FakeMeasuredCost

GENOTYPE = {
    "format": "nas-genotype/1", "input": {"channels": 3, "resolution": 32},
    "stem": {"type": "conv", "out": 8, "stride": 2, "act": "relu"},
    "head": {"conv": 0, "hidden": 0, "dropout": 0.0, "num_classes": 10},
}


def _study(rows, directions=("maximize",)) -> optuna.Study:
    """rows: (state, accuracy, cost, out channels, duplicate_of); the reward is mnasnet at T = 20."""
    reward = make_reward("mnasnet", 20.0)
    study = optuna.create_study(directions=list(directions))
    for state, accuracy, cost, out, duplicate in rows:
        genotype = {**GENOTYPE, "stages": [{"blocks": [{"type": "basic", "out": out, "kernel": 3}]}]}
        attrs = {"accuracy": accuracy, "cost": cost, "reward": reward(accuracy, cost), "genotype": genotype,
                 "hash": f"h{out}"}
        if duplicate is not None:
            attrs["duplicate_of"] = duplicate
        values = None
        if state == TrialState.COMPLETE:
            values = [accuracy, cost] if len(directions) > 1 else [reward(accuracy, cost)]
        study.add_trial(optuna.trial.create_trial(state=state, values=values, params={"o": out},
                                                  distributions={"o": CategoricalDistribution([8, 16, 24, 32])},
                                                  user_attrs=attrs))
    return study


C, P = TrialState.COMPLETE, TrialState.PRUNED


def test_best_reward_wins_and_repeats_and_pruned_trials_do_not_count():
    study = _study([(C, 0.80, 20.0, 8, None), (C, 0.85, 20.0, 16, None), (P, 0.99, 5.0, 24, None),
                    (C, 0.85, 20.0, 16, 1)])
    winner = choose_winner(study, FakeCost(), make_reward("mnasnet", 20.0))
    assert winner.trial.number == 1 and winner.finalists == []
    assert winner.final_cost == FakeCost().cost(winner.genotype) == 16.0  # recounted, not the search's 20


def test_no_completed_trial_no_winner():
    assert choose_winner(_study([(P, 0.9, 10.0, 8, None)]), FakeCost(), make_reward("mnasnet", 20.0)) is None


def test_pareto_winner_is_the_most_accurate_front_member_within_the_target():
    rows = [(C, 0.70, 10.0, 8, None), (C, 0.80, 19.0, 16, None), (C, 0.90, 40.0, 24, None), (C, 0.60, 30.0, 32, None)]
    study = _study(rows, ("maximize", "minimize"))
    winner = choose_winner(study, FakeCost(), make_reward("pareto", 20.0))
    assert winner.trial.number == 1  # 0.90 is more accurate but over T; 0.60 is not on the front


def test_finalists_rerank_on_careful_side_by_side_measurements():
    """Trial 1 led on a lucky 10 ms; side by side it takes 40 ms (over T): trial 0 wins."""
    study = _study([(C, 0.80, 20.0, 8, None), (C, 0.81, 10.0, 16, None), (C, 0.50, 20.0, 24, None)])
    careful = {8: 20.0, 16: 40.0, 24: 1.0}
    cost = FakeMeasuredCost(careful=lambda g: careful[g.stages[0][0].out])
    winner = choose_winner(study, cost, make_reward("mnasnet", 20.0), finalists=2)
    hashes = [parse_genotype(study.trials[i].user_attrs["genotype"]).hash() for i in (1, 0)]
    assert cost.measured == [hashes]  # the top 2 by search reward, in one side-by-side call
    assert winner.trial.number == 0 and winner.final_cost == 20.0 and winner.within_target and winner.note is None
    assert [f.trial for f in winner.finalists] == [0, 1]
    assert winner.finalists[1].reward == make_reward("mnasnet", 20.0)(0.81, 40.0)


def test_an_over_target_finalist_loses_to_one_within_the_target():
    """Soft reward: 0.95 at 21 ms (reward 0.9468) beats 0.80 at 20 ms, but it misses T = 20 ms."""
    study = _study([(C, 0.95, 21.0, 8, None), (C, 0.80, 20.0, 16, None)])
    reward = make_reward("mnasnet", 20.0)
    assert reward(0.95, 21.0) > reward(0.80, 20.0)
    winner = choose_winner(study, FakeMeasuredCost(careful=lambda g: {8: 21.0, 16: 20.0}[g.stages[0][0].out]),
                           reward, finalists=2)
    assert winner.trial.number == 1 and winner.within_target and winner.final_cost == 20.0


def test_a_network_measured_within_the_target_always_reaches_the_finalists():
    study = _study([(C, 0.95, 25.0, 8, None), (C, 0.80, 22.0, 16, None), (C, 0.60, 15.0, 24, None)])
    careful = {8: 30.0, 16: 23.0, 24: 19.0}
    winner = choose_winner(study, FakeMeasuredCost(careful=lambda g: careful[g.stages[0][0].out]),
                           make_reward("mnasnet", 20.0), finalists=2)  # trial 2 (the only one within T) is 3rd
    assert [f.trial for f in winner.finalists] == [0, 2]  # by reward; the winner is the best within T
    assert winner.trial.number == 2 and winner.within_target and winner.final_cost == 19.0


def test_when_no_finalist_meets_the_target_the_closest_wins_and_says_so():
    study = _study([(C, 0.95, 25.0, 8, None), (C, 0.80, 22.0, 16, None), (C, 0.60, 15.0, 24, None)])
    careful = {8: 30.0, 16: 23.0, 24: 21.0}
    winner = choose_winner(study, FakeMeasuredCost(careful=lambda g: careful[g.stages[0][0].out]),
                           make_reward("mnasnet", 20.0), finalists=2)  # trials 0 and 2: both over when measured again
    assert winner.trial.number == 2 and not winner.within_target and winner.final_cost == 21.0
    assert winner.note == ("no finalist meets the target 20 when measured again; the winner (trial 2) is the closest "
                           "at 21; the best network within the target in the search was trial 2 (15, proxy accuracy "
                           "0.6000)")


def test_finalists_trained_again_decide_the_winner():
    study = _study([(C, 0.85, 20.0, 8, None), (C, 0.84, 20.0, 16, None)])
    fresh = {8: 0.70, 16: 0.86}
    winner = choose_winner(study, FakeCost(), make_reward("mnasnet", 100.0), finalists=2,
                           retrain=lambda g, seed: fresh[g.stages[0][0].out], seeds=[1, 2])
    assert winner.trial.number == 1 and winner.accuracy == 0.86
    assert [f.seeds for f in winner.finalists] == [2, 2]


def test_without_finalists_the_winner_is_measured_once_carefully():
    study = _study([(C, 0.80, 20.0, 8, None), (C, 0.81, 10.0, 16, None)])
    cost = FakeMeasuredCost(careful=lambda g: 12.5)
    winner = choose_winner(study, cost, make_reward("mnasnet", 20.0), finalists=1)
    assert winner.trial.number == 1 and winner.final_cost == 12.5 and len(cost.measured) == 1
    assert winner.fingerprint == {"id": "fake"} and winner.finalists == []
