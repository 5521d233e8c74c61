"""Finalists: the best few networks trained again with fresh seeds and measured again side by side."""

from __future__ import annotations

import csv
import statistics
from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

import nas
from nas.config import load_config
from nas.search.finalists import fidelity_tau, finalist_pool, score_finalists, top_distinct
from nas.search.reward import make_reward
from nas.search.run import search
from tests.search_helpers import FakeCost, FakeMeasuredCost, FakeTrainer, tiny_overrides

TINY_GENOTYPE = {
    "format": "nas-genotype/1", "input": {"channels": 3, "resolution": 32},
    "stem": {"type": "conv", "out": 8, "stride": 2, "act": "relu"},
    "stages": [{"blocks": [{"type": "basic", "out": 8, "kernel": 3}]}],
    "head": {"conv": 0, "hidden": 0, "dropout": 0.0, "num_classes": 10},
}


def _trial(number: int, accuracy: float, cost: float, value: float, genotype_hash: str, out: int = 8):
    genotype = {**TINY_GENOTYPE, "stages": [{"blocks": [{"type": "basic", "out": out, "kernel": 3}]}]}
    trial = optuna.trial.create_trial(
        value=value, params={"o": out}, distributions={"o": CategoricalDistribution([8, 16, 24])},
        user_attrs={"accuracy": accuracy, "cost": cost, "hash": genotype_hash, "genotype": genotype})
    trial.number = number
    return trial


def _side_by_side(latencies: list[float], calls: list):
    def measure(genotypes):
        calls.append(len(genotypes))  # all finalists in one call: measured together
        return [SimpleNamespace(median_ms=ms, fingerprint={"id": "x"}, conditions={"backend": "torch"})
                for ms in latencies]
    return measure


def test_top_distinct_keeps_one_trial_per_network():
    trials = [_trial(0, 0.8, 10, 0.9, "a"), _trial(1, 0.8, 9, 0.95, "a"), _trial(2, 0.7, 10, 0.8, "b"),
              _trial(3, 0.6, 10, 0.7, "c")]
    assert [t.number for t in top_distinct(trials, 2)] == [1, 2]
    assert [t.number for t in top_distinct(trials, 10)] == [1, 2, 3]


def test_finalist_pool_keeps_a_network_within_the_target():
    """The top 2 by reward are both over T = 10: the last place goes to the best network within it."""
    trials = [_trial(0, 0.9, 10.5, 0.88, "a"), _trial(1, 0.9, 10.8, 0.87, "b"), _trial(2, 0.8, 9.0, 0.80, "c"),
              _trial(3, 0.82, 9.5, 0.82, "d"), _trial(4, 0.7, 12.0, 0.6, "e")]
    assert [t.number for t in finalist_pool(trials, 2, 10.0)] == [0, 3]
    assert [t.number for t in finalist_pool(trials, 4, 10.0)] == [0, 1, 3, 2]  # already holds one within
    assert [t.number for t in finalist_pool([trials[0], trials[4]], 1, 10.0)] == [0]  # none within: as ranked


def test_remeasured_latency_reorders_the_finalists():
    """Trial 0 led on a lucky 5 ms; side by side it takes 20 ms and trial 1 (10 ms) wins."""
    reward = make_reward("mnasnet", 10.0)
    trials = [_trial(0, 0.80, 5.0, reward(0.80, 5.0), "a", 8), _trial(1, 0.79, 10.0, reward(0.79, 10.0), "b", 16)]
    calls: list = []
    finalists = score_finalists(top_distinct(trials, 5), reward, _side_by_side([20.0, 10.0], calls))
    assert calls == [2]
    assert [f.trial for f in finalists] == [1, 0]
    assert finalists[0].cost == 10.0 and finalists[0].search_cost == 10.0 and finalists[0].within_target
    assert finalists[0].reward == pytest.approx(0.79)  # at the target: ACC * 1
    assert finalists[1].reward == pytest.approx(0.80 * 2 ** -0.07) and not finalists[1].within_target
    assert finalists[0].conditions == {"backend": "torch"} and finalists[0].seeds == 0


def test_fresh_trainings_rerank_the_finalists():
    """The search's best accuracy (0.90) was luck: its fresh trainings average 0.80; trial 1 wins."""
    reward = make_reward("mnasnet", 10.0)
    trials = [_trial(0, 0.90, 10.0, reward(0.90, 10.0), "a", 8), _trial(1, 0.85, 10.0, reward(0.85, 10.0), "b", 16),
              _trial(2, 0.70, 10.0, reward(0.70, 10.0), "c", 24)]
    fresh = {(8, 1): 0.79, (8, 2): 0.81, (16, 1): 0.86, (16, 2): 0.88, (24, 1): 0.70, (24, 2): 0.72}
    trained = []

    def retrain(genotype, seed):
        trained.append(seed)
        return fresh[(genotype.stages[0][0].out, seed)]

    finalists = score_finalists(trials, reward, lambda gs: [10.0] * len(gs), retrain, seeds=[1, 2])
    assert [f.trial for f in finalists] == [1, 0, 2] and sorted(trained) == [1, 1, 1, 2, 2, 2]
    assert finalists[0].accuracy == pytest.approx(0.87) and finalists[0].seeds == 2
    assert finalists[0].accuracy_std == pytest.approx(statistics.stdev([0.86, 0.88]))
    # search order a, b, c vs finalist order b, a, c: one discordant pair of three -> tau = 1/3
    assert fidelity_tau(finalists) == pytest.approx(1 / 3)


def test_search_picks_its_winner_from_the_finalists(tmp_path):
    """Side by side the finalists measure differently (slowest in search = fastest now) and are trained
    again: the winner is the best reward on the fresh numbers, computed here by hand."""
    overrides = tiny_overrides(tmp_path, "fin", trials=6, objective="latency", target_latency="80ms",
                               finalists=3, finalist_seeds=2, finalist_max_seeds=2)  # no settling trainings
    cost = FakeMeasuredCost(careful=lambda g: 100.0 - FakeCost().cost(g))
    fresh = FakeTrainer(accuracy=lambda g: 0.6 + FakeCost().cost(g) / 1000)

    def retrain(genotype, seed):
        return fresh(genotype).accuracy + seed / 1000

    search(load_config(overrides=overrides), quiet=True, cost_model=cost, trainer=FakeTrainer(), retrain=retrain)
    folder = tmp_path / "runs" / "fin"
    with (folder / "trials.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["state"] == "COMPLETE" and not r["duplicate_of"]]
    ranked = sorted(rows, key=lambda r: float(r["reward"]), reverse=True)[:3]
    assert len(ranked) >= 2
    assert cost.measured == [[r["hash"] for r in ranked]]  # the top 3 distinct, in one side-by-side call
    fresh_ms = {r["number"]: 100.0 - float(r["cost"]) for r in ranked}
    fresh_acc = {r["number"]: 0.6 + float(r["cost"]) / 1000 + 0.0015 for r in ranked}  # seeds 1 and 2: mean +1.5e-3
    within = [r for r in ranked if fresh_ms[r["number"]] <= 80]
    by_hand = max(within, key=lambda r: fresh_acc[r["number"]] * (fresh_ms[r["number"]] / 80) ** -0.07)
    best = nas.load_genotype(folder / "best.yaml")
    assert best.provenance["trial"] == int(by_hand["number"]) and best.provenance["within_target"] is True
    assert best.provenance["latency_ms"] == fresh_ms[by_hand["number"]]
    assert best.provenance["finalist_accuracy"] == pytest.approx(fresh_acc[by_hand["number"]])
    report = (folder / "report.md").read_text()
    table = report.split("## Finalists")[1].split("\n\n")[2].splitlines()[2:]
    assert len(table) == best.provenance["finalists"] == len(ranked)
    ms = fresh_ms[by_hand["number"]]
    assert f"- budget use: {ms:.4g} ms = {ms / 80:.0%} of the target" in report


def test_finalists_must_be_positive(tmp_path):
    with pytest.raises(nas.NasError, match="finalists: 0 is out of range; expected an integer from 1 to 1000"):
        load_config(overrides={"finalists": 0})
