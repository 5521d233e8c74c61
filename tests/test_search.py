"""End-to-end searches on synthetic data: outputs, failures, resume after a kill, config errors."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nas
from nas.cli import main
from nas.config import load_config
from nas.runner import search
from tests.search_helpers import TINY_SPACE, tiny_overrides, tiny_yaml


def _rows(folder: Path) -> list[dict]:
    with (folder / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def test_local_search_writes_every_output(tmp_path):
    config = load_config(overrides=tiny_overrides(tmp_path, "e2e", trials=4, strategy="evolution"))
    summary = search(config, quiet=True)
    folder = tmp_path / "runs" / "e2e"
    for name in ("best.yaml", "trials.csv", "pareto.csv", "pareto.png", "report.md", "study.db"):
        assert (folder / name).is_file(), name
    rows = _rows(folder)
    assert len(rows) == 4 and summary.trials == 4
    assert all(r["state"] in ("COMPLETE", "PRUNED", "FAIL") for r in rows)
    best = nas.load_genotype(folder / "best.yaml")
    assert best.provenance["source"] == "nas search" and "macs" in best.provenance
    assert best.head["num_classes"] == 10  # the proxy data set's classes
    model = nas.build_model(best)
    assert sum(p.numel() for p in model.parameters()) > 0
    report = (folder / "report.md").read_text()
    assert "Winner" in report and "Pareto front" in report


def test_a_network_seen_before_is_not_trained_again(tmp_path, monkeypatch):
    """Two genotypes in the whole space and 8 trials: only 2 proxy trainings, the rest reuse them."""
    import predictors.proxy

    trained = []
    real = predictors.proxy.train_proxy
    monkeypatch.setattr(predictors.proxy, "train_proxy", lambda g, *a, **k: trained.append(g.hash()) or real(g, *a, **k))
    space = {**TINY_SPACE, "stages": [{"stride": 1, "out": [8], "repeat": [1], "types": ["basic"]}],
             "params": {"basic": {"kernel": [3, 5], "se": [0.0], "avg_down": [False], "act": ["relu"]}}}
    config = load_config(overrides=tiny_overrides(tmp_path, "dup", trials=8, space=space))
    search(config, quiet=True)
    rows = _rows(tmp_path / "runs" / "dup")
    assert len(rows) == 8 and len(trained) == len(set(trained)) == 2
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
    overrides = tiny_overrides(tmp_path, "nan", trials=10, max_failures=3)
    overrides["proxy.lr"] = 1e9  # the loss explodes: every trial fails with its reason
    summary = search(load_config(overrides=overrides), quiet=True)
    rows = _rows(tmp_path / "runs" / "nan")
    assert len(rows) == 3 and summary.best_path is None
    assert all(r["state"] == "FAIL" for r in rows)
    assert all("NonFiniteLoss" in r["reason"] for r in rows)
    assert "3 trials failed in a row" in summary.message


def test_pareto_reward_emits_front(tmp_path):
    config = load_config(overrides=tiny_overrides(tmp_path, "mo", trials=4, reward="pareto", strategy="nsga2"))
    summary = search(config, quiet=True)
    front = list(csv.DictReader((tmp_path / "runs" / "mo" / "pareto.csv").open()))
    assert summary.best_path is not None and len(front) >= 1


def test_hard_reward_rejects_over_budget_before_training(tmp_path):
    overrides = tiny_overrides(tmp_path, "hard", trials=3, reward="mnasnet-hard", target_macs="1k",
                               reject_factor=1.5)
    summary = search(load_config(overrides=overrides), quiet=True)
    rows = _rows(tmp_path / "runs" / "hard")
    assert summary.completed == 0 and len(rows) == 3
    assert all(r["state"] == "PRUNED" and r["reason"].startswith("rejected before training") for r in rows)
    assert all(r["train_seconds"] == "" for r in rows)


def _complete(db: Path) -> set[int]:
    with sqlite3.connect(db) as con:
        return {n for (n,) in con.execute("select number from trials where state = 'COMPLETE'")}


def _finished(db: Path) -> int:
    return len(_complete(db))


def test_resume_after_kill_keeps_finished_trials(tmp_path):
    config = tiny_yaml(tmp_path, "kill", trials=8)
    cmd = [sys.executable, "-m", "nas", "search", "--config", config, "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = tmp_path / "runs" / "kill" / "study.db"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists() and _finished(db) >= 2:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _complete(db)
    assert len(before) >= 2
    # without --resume the run is protected
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "add --resume" in again.stderr and "Traceback" not in again.stderr
    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr
    rows = _rows(tmp_path / "runs" / "kill")
    assert len(rows) == 8  # the killed trial counts as a finished (failed) one
    assert before <= _complete(db)  # no finished trial lost
    interrupted = [r for r in rows if r["reason"].startswith("interrupted")]
    assert len(interrupted) <= 1 and all(r["state"] == "FAIL" for r in interrupted)


@pytest.mark.parametrize("flags, message", [
    (["--reward", "foo"], "reward: 'foo' is not one of mnasnet, mnasnet-hard, tunas-abs, pareto"),
    (["--strategy", "bogus"], "strategy: 'bogus' is not one of"),
    (["--budget", "soon"], "budget: 'soon' is not a duration; use e.g. 900s, 15m or 1h"),
    (["--target-latency=-3ms"], "target_latency: '-3ms' is not a positive latency"),
    (["--trials", "many"], "trials: 'many' is not an integer"),
    (["--latency", "guess"], "latency: 'guess' is not one of measure, lut, predictor"),
    (["--proxy-dataset", "imagenet"], "dataset: 'imagenet' is not one of"),
    (["--latency", "predictor"], "latency_model: required with --latency predictor"),
])
def test_config_errors_are_one_line(tmp_path, capsys, flags, message):
    code = main(["search", "--runs-dir", str(tmp_path), "--quiet"] + flags)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and "\n" not in err


def test_config_file_unknown_key(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("target_latency: 20ms\nproxy:\n  epochz: 3\n")
    assert main(["search", "--config", str(path)]) == 2
    assert "proxy.epochz: unknown key; allowed keys are dataset" in capsys.readouterr().err


def test_space_config_error(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("space:\n  types: [mbconv, transformer]\n")
    assert main(["search", "--config", str(path), "--runs-dir", str(tmp_path)]) == 2
    assert "space.types: transformer is not one of mbconv" in capsys.readouterr().err


def test_ray_backend_two_workers(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray.tune")
    import nas.ray_backend as ray_backend

    after_fit = []  # trials recorded only after Tune finished (none: the callback records them live)
    real = ray_backend.record_results
    monkeypatch.setattr(ray_backend, "record_results",
                        lambda *a, **k: after_fit.append(real(*a, **k)) or after_fit[-1])
    overrides = tiny_overrides(tmp_path, "ray", trials=4, backend="ray", workers=2)
    summary = search(load_config(overrides=overrides), quiet=False)
    assert after_fit == [0]
    err = capsys.readouterr().err
    assert err.count("[trial ") == 4 and err.count("  -> ") == 4
    folder = tmp_path / "runs" / "ray"
    rows = _rows(folder)
    assert len(rows) == 4 and summary.trials == 4
    assert {r["state"] for r in rows} <= {"COMPLETE", "PRUNED", "FAIL"}
    assert summary.completed >= 1 and (folder / "best.yaml").is_file()
    assert nas.load_genotype(folder / "best.yaml").provenance["trial"] in {int(r["number"]) for r in rows}
