"""The winner is chosen on side-by-side re-measurements of the best few candidates."""

from __future__ import annotations

import csv
import dataclasses

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

import nas
import predictors.latency
from nas.config import load_config
from nas.evaluate import reward_of
from nas.finalists import remeasure, top_distinct
from nas.runner import search
from predictors.latency import Measurement
from tests.search_helpers import tiny_overrides

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


def _fake_measure(latencies: list[float]):
    def measure_many(genotypes, config=None, cache=None, group=6, progress=None):
        assert cache is None and len(genotypes) == len(latencies)  # fresh, all together
        return [Measurement(genotype_hash=g.hash(), median_ms=ms, iqr_ms=0.0, q25_ms=ms, q75_ms=ms, min_ms=ms,
                            reps=10, noisy=False, backend="torch", device="cpu", threads=1, batch=1,
                            resolution=32, memory_format="contiguous", fingerprint={"id": "x"})
                for g, ms in zip(genotypes, latencies, strict=True)]
    return measure_many


def test_top_distinct_keeps_one_trial_per_network():
    trials = [_trial(0, 0.8, 10, 0.9, "a"), _trial(1, 0.8, 9, 0.95, "a"), _trial(2, 0.7, 10, 0.8, "b"),
              _trial(3, 0.6, 10, 0.7, "c")]
    assert [t.number for t in top_distinct(trials, 2)] == [1, 2]
    assert [t.number for t in top_distinct(trials, 10)] == [1, 2, 3]


def test_remeasured_latency_reorders_the_finalists(monkeypatch):
    """Trial 0 led on a lucky 5 ms; side by side it takes 20 ms and trial 1 (10 ms) wins."""
    config = load_config(overrides={"target_latency": "10ms", "latency_resolution": 32})
    reward = reward_of(config)
    trials = [_trial(0, 0.80, 5.0, reward(0.80, 5.0), "a", 3), _trial(1, 0.79, 10.0, reward(0.79, 10.0), "b", 5)]
    monkeypatch.setattr(predictors.latency, "measure_many", _fake_measure([20.0, 10.0]))
    finalists = remeasure(config, top_distinct(trials, 5))
    assert [f.trial for f in finalists] == [1, 0]
    assert finalists[0].measured_ms == 10.0 and finalists[0].search_ms == 10.0
    assert finalists[0].reward == pytest.approx(0.79)  # at the target: ACC * 1
    assert finalists[1].reward == pytest.approx(0.80 * 2 ** -0.07)


def test_search_picks_its_winner_from_remeasured_finalists(tmp_path, monkeypatch):
    quick = dataclasses.replace(predictors.latency.CAREFUL, rounds=2, round_seconds=0.05, min_reps=5)
    monkeypatch.setattr(predictors.latency, "CAREFUL", quick)  # the real one takes ~6 s per network
    overrides = tiny_overrides(tmp_path, "fin", trials=4, objective="latency", target_latency="1ms",
                               latency="measure", latency_threads=1, finalists=3)
    search(load_config(overrides=overrides), quiet=True)
    folder = tmp_path / "runs" / "fin"
    best = nas.load_genotype(folder / "best.yaml")
    report = (folder / "report.md").read_text()
    assert "## Finalists" in report
    with (folder / "trials.csv").open() as f:
        complete = {r["hash"] for r in csv.DictReader(f) if r["state"] == "COMPLETE"}
    table = report.split("## Finalists")[1].split("\n\n")[1].splitlines()[2:]
    assert len(table) == best.provenance["finalists"] == min(3, len(complete))
    assert table[0].startswith(f"| {best.provenance['trial']} |")  # the winner heads the re-ranked table
    assert best.provenance["latency_ms"] > 0


def test_finalists_must_be_positive(tmp_path):
    with pytest.raises(nas.NasError, match="finalists: 0 must be >= 1"):
        load_config(overrides={"finalists": 0})
