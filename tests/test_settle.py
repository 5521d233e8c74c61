"""Finalists that settle it: the two leaders trained again until the lead is beyond two standard errors,
else a tie (most trainings reached, or no time left for another); every figure computed by hand."""

from __future__ import annotations

import csv
import math
import statistics

import pytest

import nas
from nas.config import load_config
from nas.search.finalists import Finalist
from nas.search.reward import make_reward
from nas.search.run import search
from nas.search.settle import settle
from tests.search_helpers import FakeMeasuredCost, FakeTrainer, tiny_overrides

REWARD = make_reward("mnasnet", 100.0)  # at a cost of exactly T the reward is the accuracy
SEEDS = [1, 2, 3, 4]


def finalist(trial: int, accuracies: list[float], within: bool = True, seconds: float = 0.0) -> Finalist:
    mean = statistics.fmean(accuracies)
    return Finalist(trial, mean, 100.0, mean, 100.0, REWARD(mean, 100.0), statistics.stdev(accuracies),
                    len(accuracies), within, accuracies=list(accuracies), train_seconds=seconds)


class Table:
    """A fake retrainer: the accuracy of each (network, seed); remembers what it trained."""

    def __init__(self, accuracy: dict[str, dict[int, float]]) -> None:
        self.accuracy, self.calls = accuracy, []

    def __call__(self, genotype, seed: int) -> float:
        self.calls.append((genotype, seed))
        return self.accuracy[genotype][seed]


def test_a_lead_beyond_two_standard_errors_needs_no_more_trainings() -> None:
    ranked = [finalist(1, [0.791, 0.789]), finalist(0, [0.801, 0.799])]
    retrain = Table({})
    s = settle(ranked, {0: "A", 1: "B"}, retrain, REWARD, SEEDS)
    assert s.outcome == "separated" and s.extra == 0 and retrain.calls == [] and s.tied == [0]
    assert s.lead == pytest.approx(0.01) and s.se == pytest.approx(math.hypot(0.001, 0.001))
    assert [f.trial for f in ranked] == [0, 1]  # sorted by reward in place


def test_the_leaders_are_trained_again_until_the_lead_is_beyond_two_standard_errors() -> None:
    # A: 0.80 +- 0.02 after two seeds (SE 0.02), B: 0.78 exactly; lead 0.02 < 2 x 0.02
    table = Table({"A": {3: 0.80, 4: 0.80}, "B": {3: 0.78, 4: 0.78}})
    ranked = [finalist(0, [0.82, 0.78]), finalist(1, [0.78, 0.78]), finalist(2, [0.70, 0.70])]
    s = settle(ranked, {0: "A", 1: "B", 2: "C"}, table, REWARD, SEEDS)
    # A seed 3: SE sd(.82,.78,.80)/sqrt3 = .011547, 2 SE .0231 > .02; B seed 3: B's SE stays 0;
    # A seed 4: sd(.82,.78,.80,.80)/2 = .008165, 2 SE .01633 < .02: separated after 3 more trainings
    assert table.calls == [("A", 3), ("B", 3), ("A", 4)]
    assert s.outcome == "separated" and s.extra == 3
    assert s.lead == pytest.approx(0.02) and s.se == pytest.approx(statistics.stdev([0.82, 0.78, 0.80, 0.80]) / 2)
    assert ranked[0].seeds == 4 and ranked[0].accuracy == pytest.approx(0.80) and ranked[2].seeds == 2
    assert "separated" in s.describe() and "after 3 extra trainings" in s.describe()


def test_a_lead_inside_the_noise_after_the_most_trainings_is_a_tie_listing_the_tied() -> None:
    noise = {1: 0.01, 2: -0.01, 3: 0.01, 4: -0.01}
    table = Table({"A": {s: 0.800 + n for s, n in noise.items()}, "B": {s: 0.799 + n for s, n in noise.items()}})
    ranked = [finalist(0, [0.81, 0.79]), finalist(1, [0.809, 0.789]), finalist(2, [0.7001, 0.6999])]
    s = settle(ranked, {0: "A", 1: "B", 2: "C"}, table, REWARD, SEEDS)
    assert table.calls == [("A", 3), ("B", 3), ("A", 4), ("B", 4)]
    assert s.outcome == "tie" and s.why == "the most trainings reached" and s.extra == 4
    assert s.tied == [0, 1] and s.lead == pytest.approx(0.001)
    assert "tied trials: 0, 1" in s.describe()


def test_no_time_for_another_training_is_a_tie_said_so() -> None:
    ranked = [finalist(0, [0.81, 0.79], seconds=10.0), finalist(1, [0.809, 0.789], seconds=10.0)]
    retrain = Table({})
    s = settle(ranked, {0: "A", 1: "B"}, retrain, REWARD, SEEDS, time_left=lambda: 4.0)  # one training: 5 s
    assert s.outcome == "tie" and s.why == "the budget ended" and retrain.calls == []


def test_one_finalist_within_the_target_has_nothing_to_separate() -> None:
    ranked = [finalist(0, [0.81, 0.79]), finalist(1, [0.90, 0.90], within=False)]
    assert settle(ranked, {0: "A", 1: "B"}, Table({}), REWARD, SEEDS).outcome == "alone"


def test_a_search_reports_how_its_finalist_stage_ended(tmp_path) -> None:
    """Every fresh training of every network scores the same: the first two leaders tie after four each."""
    overrides = tiny_overrides(tmp_path, "settle", trials=5, objective="latency", target_latency="80ms",
                               finalists=3, finalist_seeds=2, finalist_max_seeds=4)
    cost = FakeMeasuredCost(careful=lambda g: 50.0)
    calls = []

    def retrain(genotype, seed):
        calls.append(seed)
        return 0.5 + (seed % 2) / 100  # seeds 1, 3: 0.51; seeds 2, 4: 0.50 (every network alike)

    search(load_config(overrides=overrides), quiet=True, cost_model=cost, trainer=FakeTrainer(), retrain=retrain)
    folder = tmp_path / "runs" / "settle"
    with (folder / "trials.csv").open() as f:
        networks = {r["hash"] for r in csv.DictReader(f) if r["state"] == "COMPLETE"}
    assert len(networks) >= 2
    finalists = min(3, len(networks))
    assert sorted(calls) == sorted([1, 2] * finalists + [3, 4] * 2)  # then the two leaders to 4 trainings
    best = nas.load_genotype(folder / "best.yaml")
    assert best.provenance["finalist_outcome"] == "tie" and best.provenance["finalist_seeds"] == 4
    report = (folder / "report.md").read_text()
    assert "finalist stage" in report and "tie: the lead of 0.0000 reward" in report
    assert "(the most trainings reached)" in report
