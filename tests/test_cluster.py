"""What a Ray search settles before its trials: absolute paths, the storage a cluster can share, data on
every node, latency never measured beside a training, and errors that would repeat in every trial."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nas.config import load_config
from nas.search.cluster import (
    GuardedCost,
    GuardedTrainer,
    absolute_sqlite,
    check_nodes,
    for_workers,
    needed_paths,
    repeats_in_every_trial,
)
from nas.search.ray_backend import FATAL, StopOnFatal
from nas.search.setup import prepare_run
from predictors.data.spec import DatasetError
from predictors.latency.node_lock import NodeLock
from searchspace.errors import GenotypeError, NasError
from tests.search_helpers import FakeCost, FakeTrainer, tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


def test_relative_sqlite_paths_become_absolute_and_others_stay() -> None:
    cwd = Path("/home/user/work")
    assert absolute_sqlite("sqlite:///runs/r/study.db", cwd) == "sqlite:////home/user/work/runs/r/study.db"
    assert absolute_sqlite("sqlite:////abs/s.db", cwd) == "sqlite:////abs/s.db"
    assert absolute_sqlite("sqlite:///:memory:", cwd) == "sqlite:///:memory:"
    assert absolute_sqlite("postgresql://u@h/db", cwd) == "postgresql://u@h/db"


def test_every_path_a_worker_reads_is_absolute_and_the_callers_run_is_untouched(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    overrides = {**tiny_overrides(tmp_path, "w"), "runs_dir": "runs", "proxy.data_dir": "data"}
    run = prepare_run(load_config(overrides=overrides), cost_model=FakeCost(), trainer=FakeTrainer())
    moved = for_workers(run, cwd=tmp_path)
    assert run.storage == "sqlite:///runs/w/study.db" and run.config.runs_dir == "runs"  # unchanged
    assert moved.storage == f"sqlite:///{tmp_path}/runs/w/study.db" and moved.folder == tmp_path / "runs" / "w"
    assert moved.config.runs_dir == str(tmp_path / "runs") and moved.config.proxy.data_dir == str(tmp_path / "data")
    assert run.config.proxy.data_dir == "data"
    monkeypatch.chdir(tmp_path / "data")  # a worker in another folder finds the same files
    assert Path(moved.storage.removeprefix("sqlite:///")).parent.is_dir()


def _run(tmp_path, storage: str | None = None, **extra):
    overrides = tiny_overrides(tmp_path, "c", **extra)
    if storage:
        overrides["storage"] = storage
    return prepare_run(load_config(overrides=overrides), cost_model=FakeCost(), trainer=FakeTrainer())


NODES = [{"NodeID": "a" * 40, "Alive": True}, {"NodeID": "b" * 40, "Alive": True}]


def test_a_sqlite_study_on_several_nodes_is_refused_with_the_postgres_recipe(tmp_path) -> None:
    run = _run(tmp_path)
    with pytest.raises(NasError, match=r"^storage: the cluster has 2 nodes .* --storage postgresql://"):
        check_nodes(run, NODES, {})
    check_nodes(run, NODES[:1], {})  # one node: the file is shared by every worker


def test_data_missing_on_one_node_is_named_before_any_trial(tmp_path) -> None:
    pytest.importorskip("psycopg")
    (tmp_path / "data").mkdir()
    run = _run(tmp_path, "postgresql://nas@127.0.0.1:1/db", **{"proxy.data_dir": str(tmp_path / "data")})
    assert needed_paths(run) == [str(tmp_path / "data")]
    check_nodes(run, NODES, {"10.0.0.1": [], "10.0.0.2": []})
    with pytest.raises(NasError, match=r"^cluster: node 10.0.0.2 has no '.*data'; every node needs the data"):
        check_nodes(run, NODES, {"10.0.0.1": [], "10.0.0.2": [str(tmp_path / "data")]})


def test_errors_of_the_set_up_repeat_in_every_trial_and_a_candidates_do_not() -> None:
    assert repeats_in_every_trial(DatasetError("dataset: no such folder"))
    assert repeats_in_every_trial(FileNotFoundError("x"))
    assert repeats_in_every_trial(NasError("storage: cannot open 'sqlite:///runs/r/study.db'"))
    assert not repeats_in_every_trial(GenotypeError("stages[0].out", "too wide"))
    assert not repeats_in_every_trial(RuntimeError("CUDA out of memory"))


def test_the_first_fatal_result_stops_every_trial_and_keeps_its_message() -> None:
    stopper = StopOnFatal()
    assert not stopper({"t1"}, {"reward": 0.5}) and not stopper.stop_all()
    assert stopper("t2", {FATAL: "storage: cannot open"}) and stopper.stop_all()
    stopper("t3", {FATAL: "later"})
    assert stopper.fatal == "storage: cannot open"


def _events_in_order(lock: NodeLock, first: str, then: str) -> list[str]:
    """``first`` holds the lock for 0.4 s; ``then`` asks for it meanwhile; the log says who ran when."""
    log: list[str] = []
    holding = threading.Event()

    def hold() -> None:
        with getattr(lock, first)():
            holding.set()
            time.sleep(0.4)
            log.append(f"{first} ends")

    worker = threading.Thread(target=hold)
    worker.start()
    holding.wait()
    with getattr(lock, then)():
        log.append(f"{then} runs")
    worker.join()
    return log


def test_a_measurement_waits_for_the_training_beside_it_and_holds_new_ones_back(tmp_path) -> None:
    lock = NodeLock(tmp_path)
    assert _events_in_order(lock, "training", "measuring") == ["training ends", "measuring runs"]
    assert lock.waited >= 0.3  # deferred, not taken beside the training
    assert _events_in_order(lock, "measuring", "training") == ["measuring ends", "training runs"]
    assert _events_in_order(lock, "training", "training") == ["training runs", "training ends"]  # shared


HOLD_TRAINING = """
import sys, time
from predictors.latency.node_lock import NodeLock
with NodeLock(sys.argv[1]).training():
    print("training", flush=True)
    time.sleep(1.0)
"""


def test_a_training_in_another_process_defers_the_measurement(tmp_path) -> None:
    genotype = _run(tmp_path).space.random_genotype(0)
    other = subprocess.Popen([sys.executable, "-c", HOLD_TRAINING, str(tmp_path / "locks")], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE)
    assert other.stdout.readline().strip() == "training"
    cost = GuardedCost(FakeCost(), NodeLock(tmp_path / "locks"))
    start = time.monotonic()
    assert cost.cost(genotype) == FakeCost().cost(genotype)
    waited = time.monotonic() - start
    assert other.wait(timeout=30) == 0
    assert waited >= 0.5 and cost.lock.waited >= 0.5  # the other process's training had to end first


def test_the_guarded_trainer_trains_under_the_lock(tmp_path) -> None:
    genotype = _run(tmp_path).space.random_genotype(0)
    lock = NodeLock(tmp_path / "locks")
    trainer = GuardedTrainer(FakeTrainer(), lock)
    assert trainer(genotype).accuracy == FakeTrainer()(genotype).accuracy
    with lock.measuring():  # nothing trains now, so the measurement does not wait
        pass
    assert lock.waited < 0.2
