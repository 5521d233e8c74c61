"""The winner is chosen on side-by-side re-measurements of the best few candidates."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

import nas
from nas.config import load_config
from nas.finalists import remeasure, top_distinct
from nas.reward import make_reward
from nas.runner import search
from tests.search_helpers import FakeCost, FakeMeasuredCost, FakeTrainer, tiny_overrides

TINY_GENOTYPE = {
    "format": "nas-genotype/1", "input": {"channels": 3, "resolution": 32},
    "stem": {"type": "conv", "out": 8, "stride": 2, "act": "relu"},
    "stages": [{"blocks": [{"type": "basic", "out": 8, "kernel": 3}]}],
    "head": {"conv": 0, "hidden": 0, "dropout": 0.0, "num_classes": 10},
}


def _trial(number: int, accuracy: float, cost: float, value: float, genotype_hash: str, kernel: int = 3):
    genotype = {**TINY_GENOTYPE, "stages": [{"blocks": [{"type": "basic", "out": 8, "kernel": kernel}]}]}
    trial = optuna.trial.create_trial(
        value=value, params={"k": kernel}, distributions={"k": CategoricalDistribution([3, 5])},
        user_attrs={"accuracy": accuracy, "cost": cost, "hash": genotype_hash, "genotype": genotype})
    trial.number = number
    return trial


def _side_by_side(latencies: list[float], calls: list):
    def measure(genotypes):
        calls.append(len(genotypes))  # all finalists in one call: measured together
        return [SimpleNamespace(median_ms=ms, fingerprint={"id": "x"}) for ms in latencies]
    return measure


def test_top_distinct_keeps_one_trial_per_network():
    trials = [_trial(0, 0.8, 10, 0.9, "a"), _trial(1, 0.8, 9, 0.95, "a"), _trial(2, 0.7, 10, 0.8, "b"),
              _trial(3, 0.6, 10, 0.7, "c")]
    assert [t.number for t in top_distinct(trials, 2)] == [1, 2]
    assert [t.number for t in top_distinct(trials, 10)] == [1, 2, 3]


def test_remeasured_latency_reorders_the_finalists():
    """Trial 0 led on a lucky 5 ms; side by side it takes 20 ms and trial 1 (10 ms) wins."""
    reward = make_reward("mnasnet", 10.0)
    trials = [_trial(0, 0.80, 5.0, reward(0.80, 5.0), "a", 3), _trial(1, 0.79, 10.0, reward(0.79, 10.0), "b", 5)]
    calls: list = []
    finalists = remeasure(top_distinct(trials, 5), _side_by_side([20.0, 10.0], calls), reward)
    assert calls == [2]
    assert [f.trial for f in finalists] == [1, 0]
    assert finalists[0].measured_ms == 10.0 and finalists[0].search_ms == 10.0
    assert finalists[0].reward == pytest.approx(0.79)  # at the target: ACC * 1
    assert finalists[1].reward == pytest.approx(0.80 * 2 ** -0.07)


def test_search_picks_its_winner_from_remeasured_finalists(tmp_path):
    """Side by side the finalists measure differently (slowest in search = fastest now): the winner is
    the best reward on the fresh numbers, computed here by hand."""
    overrides = tiny_overrides(tmp_path, "fin", trials=6, objective="latency", target_latency="30ms",
                               finalists=3)
    cost = FakeMeasuredCost(careful=lambda g: 100.0 - FakeCost().cost(g))
    search(load_config(overrides=overrides), quiet=True, cost_model=cost, trainer=FakeTrainer())
    folder = tmp_path / "runs" / "fin"
    with (folder / "trials.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["state"] == "COMPLETE" and not r["duplicate_of"]]
    ranked = sorted(rows, key=lambda r: float(r["reward"]), reverse=True)
    assert len(ranked) >= 2
    assert cost.measured == [[r["hash"] for r in ranked[:3]]]  # the top 3 distinct, in one side-by-side call
    report = (folder / "report.md").read_text()
    table = report.split("## Finalists")[1].split("\n\n")[1].splitlines()[2:]
    best = nas.load_genotype(folder / "best.yaml")
    assert len(table) == best.provenance["finalists"] == min(3, len(ranked))
    assert table[0].startswith(f"| {best.provenance['trial']} |")  # the winner heads the re-ranked table
    fresh = {r["number"]: 100.0 - float(r["cost"]) for r in ranked[:3]}
    by_hand = max(ranked[:3], key=lambda r: float(r["accuracy"]) * (fresh[r["number"]] / 30) ** -0.07)
    assert best.provenance["trial"] == int(by_hand["number"])
    assert best.provenance["latency_ms"] == fresh[by_hand["number"]]


def test_finalists_must_be_positive(tmp_path):
    with pytest.raises(nas.NasError, match="finalists: 0 is out of range; expected an integer from 1 to 1000"):
        load_config(overrides={"finalists": 0})
