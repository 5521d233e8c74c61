"""End-to-end searches on synthetic data: outputs, failures, resume after a kill, config errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import nas
from nas.cli import main
from nas.config import load_config
from nas.search.run import search
from predictors.training.loop import NonFiniteLoss
from tests.search_helpers import TINY_SPACE, FakeCost, FakeTrainer, tiny_overrides


def _rows(folder: Path) -> list[dict]:
    with (folder / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def _genotypes(folder: Path) -> dict:
    """Trial number -> genotype, read back from the run's study."""
    import optuna

    study = optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / 'study.db'}")
    return {t.number: nas.load_genotype(t.user_attrs["genotype"]) for t in study.trials}


def _search(tmp_path, name: str, trainer=None, cost_model=None, **extra):
    config = load_config(overrides=tiny_overrides(tmp_path, name, **extra))
    trainer = trainer or FakeTrainer()
    summary = search(config, quiet=True, cost_model=cost_model or FakeCost(), trainer=trainer,
                     retrain=lambda genotype, seed: trainer.accuracy(genotype))  # finalists: the same scores
    return summary, _rows(tmp_path / "runs" / name), trainer


def test_local_search_writes_every_output(tmp_path):
    summary, rows, trainer = _search(tmp_path, "e2e", trials=6, strategy="evolution", target_macs="40")
    folder = tmp_path / "runs" / "e2e"
    for name in ("best.yaml", "trials.csv", "pareto.csv", "pareto.png", "report.md", "study.db"):
        assert (folder / name).is_file(), name
    assert len(rows) == 6 and summary.trials == 6 and {r["state"] for r in rows} == {"COMPLETE"}
    genotypes = _genotypes(folder)
    for r in rows:  # the reward of every trial, by hand: ACC * (COST / T) ** -0.07
        genotype = genotypes[int(r["number"])]
        cost = FakeCost().cost(genotype)
        assert float(r["cost"]) == cost and float(r["accuracy"]) == trainer.accuracy(genotype)
        assert float(r["reward"]) == pytest.approx(float(r["accuracy"]) * (cost / 40) ** -0.07)
    trained = [r for r in rows if not r["duplicate_of"]]
    top = max(trained, key=lambda r: float(r["reward"]))
    best = nas.load_genotype(folder / "best.yaml")
    assert best.provenance["trial"] == int(top["number"]) and best.hash() == top["hash"]
    assert best.provenance["macs"] == float(top["cost"]) and best.provenance["source"] == "nas search"
    assert best.head["num_classes"] == 10  # the proxy data set's classes
    assert f"- winner: trial {top['number']}" in (folder / "report.md").read_text()


def test_a_network_seen_before_is_not_trained_again(tmp_path):
    """Two genotypes in the whole space and 8 trials: only 2 trainings, the rest reuse them."""
    space = {**TINY_SPACE, "stages": [{"stride": 1, "out": [8], "repeat": [1], "types": ["basic"]}],
             "params": {"basic": {"kernel": [3, 5], "se": [0.0], "avg_down": [False], "act": ["relu"]}}}
    _, rows, trainer = _search(tmp_path, "dup", trials=8, space=space)
    assert len(rows) == 8 and len(trainer.trained) == len(set(trainer.trained)) == 2
    repeats = [r for r in rows if r["duplicate_of"]]
    assert len(repeats) == 6
    by_number = {r["number"]: r for r in rows}
    for r in repeats:
        original = by_number[r["duplicate_of"]]
        assert r["hash"] == original["hash"] and r["reward"] == original["reward"] and r["state"] == "COMPLETE"
        assert float(r["train_seconds"]) == 0.0
    report = (tmp_path / "runs" / "dup" / "report.md").read_text()
    assert "repeats of a network already scored (results reused, not retrained): 6" in report


def test_failing_trials_are_recorded_and_stop_the_run(tmp_path):
    failing = FakeTrainer(error=NonFiniteLoss("proxy: loss became nan at epoch 1"))
    summary, rows, _ = _search(tmp_path, "nan", trainer=failing, trials=10, max_failures=3)
    assert len(rows) == 3 and summary.best_path is None
    assert all(r["state"] == "FAIL" for r in rows)
    assert all(r["reason"].startswith("NonFiniteLoss: proxy: loss became nan at epoch 1") for r in rows)
    assert "3 trials failed in a row" in summary.message


def test_pareto_reward_emits_front(tmp_path):
    summary, rows, _ = _search(tmp_path, "mo", trials=6, reward="pareto", strategy="nsga2", target_macs="40")
    front = list(csv.DictReader((tmp_path / "runs" / "mo" / "pareto.csv").open()))
    done = {(float(r["accuracy"]), float(r["cost"])) for r in rows if r["state"] == "COMPLETE"}
    by_hand = {p for p in done if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in done)}
    assert {(float(r["accuracy"]), float(r["cost"])) for r in front} == by_hand
    best = nas.load_genotype(tmp_path / "runs" / "mo" / "best.yaml")
    within = [p for p in by_hand if p[1] <= 40] or list(by_hand)
    assert best.provenance["proxy_accuracy"] == max(within)[0]


def test_hard_reward_rejects_over_budget_before_training(tmp_path):
    summary, rows, trainer = _search(tmp_path, "hard", trials=3, reward="mnasnet-hard", target_macs="10",
                                     reject_factor=1.5)  # every candidate costs 24 or more
    assert summary.completed == 0 and len(rows) == 3 and trainer.trained == []
    assert all(r["state"] == "PRUNED" and r["reason"].startswith("rejected before training") for r in rows)
    assert all(r["train_seconds"] == "" for r in rows)


@pytest.mark.parametrize("flags, message", [
    (["--reward", "foo"], "reward: foo is not one of mnasnet, mnasnet-hard, tunas-abs, pareto"),
    (["--strategy", "bogus"], "strategy: bogus is not one of auto, surrogate"),
    (["--budget", "soon"], "budget: 'soon' is not a duration; use e.g. 900s, 15m or 1h"),
    (["--target-latency=-3ms"], "target_latency: '-3ms' is not a positive latency"),
    (["--trials", "many"], "trials: 'many' is not an integer >= 1 or null"),
    (["--latency", "guess"], "latency: guess is not one of measure, lut, predictor"),
    (["--latency-backend", "tpu"], "latency_backend: tpu is not one of torch, torchscript, onnxruntime"),
    (["--proxy-dataset", "imagenet"], "proxy.dataset: imagenet is not one of"),
    (["--latency", "predictor"], "latency_model: required with latency: predictor"),
    (["--latency-threads", "0"], "latency_threads: 0 is out of range; expected an integer from 1 to 1024"),
    (["--proxy-width", "1e6"], "proxy.width: 1e+06 is out of range; expected a number from 0.05 to 4"),
    (["--proxy-resolution", "100000"], "proxy.resolution: 100000 is out of range"),
    (["--max-failures", "0"], "max_failures: 0 is out of range; expected an integer >= 1"),
    (["--proxy-device", "tpu"], "proxy.device: 'tpu' is not a device"),
])
def test_config_errors_are_one_line(tmp_path, capsys, flags, message):
    code = main(["search", "--runs-dir", str(tmp_path / "runs"), "--quiet"] + flags)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and "\n" not in err
    assert not (tmp_path / "runs").exists()  # refused before any run folder is made


def test_config_file_unknown_key(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("target_latency: 20ms\nproxy:\n  epochz: 3\n")
    assert main(["search", "--config", str(path)]) == 2
    assert "proxy.epochz: unknown key; allowed keys are dataset" in capsys.readouterr().err


def test_space_config_error(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("space:\n  types: [mbconv, capsule]\n")
    assert main(["search", "--config", str(path), "--runs-dir", str(tmp_path)]) == 2
    assert "space.types: capsule is not one of mbconv" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray cluster at a time (make test: --dist loadgroup)
def test_ray_backend_two_workers_reuses_a_network_already_scored(tmp_path, capsys):
    """One network in the whole space, 5 Ray trials on 2 workers: at most the 2 first (running together)
    train it; every later trial finds it in the study and reuses its score. Outputs as for a local run."""
    pytest.importorskip("ray.tune")
    space = {**TINY_SPACE, "stages": [{"stride": 1, "out": [8], "repeat": [1], "types": ["basic"]}],
             "params": {"basic": {"kernel": [3], "se": [0.0], "avg_down": [False], "act": ["relu"]}}}
    overrides = tiny_overrides(tmp_path, "rayrep", trials=5, backend="ray", workers=2, space=space, finalists=1)
    summary = search(load_config(overrides=overrides), quiet=False)
    err = capsys.readouterr().err
    assert err.count("[trial ") == 5 and err.count("  -> ") == 5  # live progress, one line each way
    folder = tmp_path / "runs" / "rayrep"
    rows = _rows(folder)
    assert len(rows) == 5 == summary.trials and len({r["hash"] for r in rows}) == 1
    trained = [r for r in rows if not r["duplicate_of"]]
    reused = [r for r in rows if r["duplicate_of"]]
    assert 1 <= len(trained) <= 2 and len(reused) == 5 - len(trained)
    originals = {r["number"]: r for r in trained}
    for r in reused:
        assert r["duplicate_of"] in originals and float(r["train_seconds"]) == 0.0
        assert r["reward"] == originals[r["duplicate_of"]]["reward"] and r["state"] == originals[r["duplicate_of"]]["state"]
    if summary.completed:
        assert nas.load_genotype(folder / "best.yaml").provenance["trial"] in {int(r["number"]) for r in trained}


def test_a_candidate_at_chance_fails_with_its_reason_and_is_not_trained_again(tmp_path):
    """10 classes: 0.11 is within the 2-point margin of chance (0.10). Never the winner, trained once."""
    space = {**TINY_SPACE, "stages": [{"stride": 1, "out": [8], "repeat": [1], "types": ["basic"]}],
             "params": {"basic": {"kernel": [3], "se": [0.0], "avg_down": [False], "act": ["relu"]}}}
    summary, rows, trainer = _search(tmp_path, "chance", trainer=FakeTrainer(accuracy=lambda g: 0.11), trials=3,
                                     space=space)
    assert len(trainer.trained) == 1 and summary.best_path is None and summary.completed == 0
    assert [r["state"] for r in rows] == ["FAIL"] * 3
    assert rows[0]["reason"].startswith("accuracy 0.1100 is at chance (0.1000): the candidate did not learn")
    assert all(r["reason"] == "same network as trial 0, which did not learn (at chance)" for r in rows[1:])


@pytest.mark.parametrize("epochs, checks, pruned_at", [(1, 1, None), (2, 1, 1.0), (1, 4, 0.5), (2, 2, 0.5)])
def test_the_pruner_stops_trainings_early_but_never_discards_a_finished_one(tmp_path, epochs, checks, pruned_at):
    # accuracies fall trial after trial, so the median pruner (5 startup trials) wants to stop every later one
    falling = iter([0.9 - 0.01 * i for i in range(40)])
    scores: dict[str, float] = {}

    def accuracy(genotype):
        return scores.setdefault(genotype.hash(), next(falling))

    trainer = FakeTrainer(accuracy, epochs=epochs, checks=checks)
    _, rows, _ = _search(tmp_path, f"prune{epochs}{checks}", trainer=trainer, trials=10, pruner="median",
                         **{"proxy.epochs": epochs, "proxy.checks_per_epoch": checks})
    states = [r["state"] for r in rows if not r["duplicate_of"]]
    if pruned_at is None:  # one report, after the training is done: nothing to save by pruning it
        assert set(states) == {"COMPLETE"}
        return
    assert states[:5] == ["COMPLETE"] * 5 and set(states[5:]) == {"PRUNED"}
    reason = f"pruned at {pruned_at:g} of {epochs} epoch(s) (accuracy "
    assert all(r["reason"].startswith(reason) for r in rows if r["state"] == "PRUNED")
    # a pruned training stops at the check that pruned it: never earlier than half an epoch, never later
    per_training = epochs * checks
    assert trainer.reported[5 * per_training:] == [k / checks for k in range(1, round(pruned_at * checks) + 1)] * (
        len(states) - 5)


class InterruptedTrainer(FakeTrainer):
    """Ctrl-C (KeyboardInterrupt) in the middle of training number ``at`` (1-based)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def __call__(self, genotype, report=None):
        if len(self.trained) + 1 == self.at:
            self.trained.append(genotype.hash())
            raise KeyboardInterrupt
        return super().__call__(genotype, report)


def test_ctrl_c_fails_the_running_trial_writes_the_outputs_and_resume_trains_it_again(tmp_path):
    trainer = InterruptedTrainer(at=3)
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, "ctrlc", trainer=trainer, trials=5)
    folder = tmp_path / "runs" / "ctrlc"
    rows = _rows(folder)  # the interrupted trial failed with its reason, its network queued to run again
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "FAIL", "WAITING"]
    assert rows[2]["reason"] == "interrupted (Ctrl-C)" and rows[2]["hash"] == trainer.trained[2]
    report = (folder / "report.md").read_text()  # written at once: the winner on the search's own scores
    assert "stopped by Ctrl-C" in report and (folder / "best.yaml").is_file()
    summary, rows, again = _search(tmp_path, "ctrlc", trials=5, resume=True)
    assert summary.completed == 5 and [r["state"] for r in rows].count("FAIL") == 1 and len(rows) == 6
    assert again.trained[0] == trainer.trained[2]  # the interrupted network is the first one trained
    assert trainer.trained[2] in {r["hash"] for r in rows if r["state"] == "COMPLETE"}
