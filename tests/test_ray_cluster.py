"""Ray as users run it: the README's command from another folder, a local cluster started with
``ray start`` and shared through PostgreSQL, a worker killed mid-trial, an error every trial would meet."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import tests.search_helpers as helpers
from nas.config import load_config
from nas.search.run import search
from predictors.data.spec import DatasetError
from searchspace.errors import NasError
from tests.postgres_server import postgres_server
from tests.search_helpers import FakeTrainer, tiny_overrides, tiny_yaml

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one Ray cluster at a time
ROOT = Path(__file__).resolve().parents[1]
NAS = str(Path(sys.executable).with_name("nas"))
RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(autouse=True)
def _ray_pickles_test_helpers():
    """Ray workers get this module's and the helpers' classes by value (they cannot import tests/)."""
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    for module in (helpers, sys.modules[__name__]):
        cloudpickle.register_pickle_by_value(module)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(folder: Path) -> list[dict]:
    with open(folder / "trials.csv") as f:
        return list(csv.DictReader(f))


def _config_file(tmp_path: Path, name: str) -> str:
    """The tiny search as a YAML file, its latency measured (so the node lock is in play)."""
    return tiny_yaml(tmp_path, name, objective="latency", target_latency="100ms", latency="measure",
                     latency_resolution=16, latency_threads=1)


def test_the_readme_command_from_another_folder_with_a_relative_runs_dir(tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config = _config_file(tmp_path, "r")
    done = subprocess.run([NAS, "search", "--config", config, "--backend", "ray", "--workers", "2", "--trials",
                           "3", "--finalists", "1", "--runs-dir", "runs", "--name", "r"], cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = work / "runs" / "r"
    rows = _rows(folder)
    assert len(rows) == 3 and "FAIL" not in {r["state"] for r in rows}, rows  # ASHA may stop weak ones early
    assert (folder / "best.yaml").is_file() and "Traceback" not in done.stderr
    assert "latency on the Ray workers: node lock" in (folder / "report.md").read_text()


class SlowFirstTrainer:
    """Trains like FakeTrainer, but its first training hangs after writing its process id (to be killed)."""

    def __init__(self, marker: Path) -> None:
        self.marker, self.inner = marker, FakeTrainer()

    def __call__(self, genotype, report=None):
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            time.sleep(120)
        return self.inner(genotype, report)


def test_a_worker_killed_mid_trial_is_recorded_failed_and_its_trial_runs_again(tmp_path) -> None:
    marker = tmp_path / "first-training.pid"

    def kill_first_worker() -> None:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        os.kill(int(marker.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    overrides = tiny_overrides(tmp_path, "killed", trials=2, backend="ray", workers=1, finalists=1)
    summary = search(load_config(overrides=overrides), quiet=True, trainer=SlowFirstTrainer(marker))
    killer.join()
    rows = _rows(tmp_path / "runs" / "killed")
    failed = [r for r in rows if r["state"] == "FAIL"]
    assert len(failed) == 1 and "run again" in failed[0]["reason"], rows
    assert summary.completed == 2 and summary.best_path is not None


def test_an_error_every_trial_would_meet_stops_the_search_at_the_first(tmp_path) -> None:
    overrides = tiny_overrides(tmp_path, "fatal", trials=8, backend="ray", workers=1, finalists=1)
    missing = DatasetError("dataset: no such folder '/data/shared' on this node")
    with pytest.raises(NasError, match=r"^dataset: no such folder '/data/shared' on this node$"):
        search(load_config(overrides=overrides), quiet=True, trainer=FakeTrainer(error=missing))
    rows = _rows(tmp_path / "runs" / "fatal")
    assert 1 <= len(rows) < 8 and all(r["state"] == "FAIL" for r in rows)


class LocalCluster:
    """The README's cluster recipe on this machine: ``ray start --head`` and ``ray start --address`` give
    two nodes, each on a loopback address of its own (127.0.0.2, 127.0.0.3), so that nothing leaves the
    machine; Ray's token authentication is off on the loopback interface."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.2:{self.port}"
        self.env = {**os.environ, "RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "disabled"}
        self.nodes: list[subprocess.Popen] = []
        self.tmp_path = tmp_path

    def start(self, head: bool) -> None:
        ip = f"127.0.0.{2 + len(self.nodes)}"
        where = ["--head", f"--port={self.port}", "--include-dashboard=false"] if head else [f"--address={self.address}"]
        log = open(self.tmp_path / f"ray-node-{len(self.nodes)}.log", "w")
        self.nodes.append(subprocess.Popen([RAY, "start", *where, f"--node-ip-address={ip}", "--num-cpus=1", "--block",
                                            "--object-store-memory=100000000"], env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))
        self._wait_for(len(self.nodes))

    def _wait_for(self, count: int) -> None:
        probe = ("import ray; ray.init(address='auto', log_to_driver=False); "
                 "print(sum(n['Alive'] for n in ray.nodes()))")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            out = subprocess.run([sys.executable, "-c", probe], env=self.env, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            time.sleep(1)
        raise AssertionError(f"the local Ray cluster did not reach {count} nodes")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            os.killpg(node.pid, signal.SIGKILL)  # the node's raylet, store and workers with it
            node.wait(timeout=60)

    def search(self, config: str, name: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([NAS, "search", "--config", config, "--backend", "ray", "--address", "auto",
                               "--workers", "2", "--trials", "3", "--finalists", "1", "--name", name, *extra],
                              cwd=self.tmp_path, env=self.env, capture_output=True, text=True, timeout=600)


def test_a_local_cluster_shares_its_study_through_postgresql_and_refuses_sqlite(tmp_path) -> None:
    pytest.importorskip("psycopg")
    with postgres_server() as (url, why):
        if url is None:
            pytest.skip(why)
        cluster = LocalCluster(tmp_path)
        try:
            cluster.start(head=True)
            cluster.start(head=False)
            config = _config_file(tmp_path, "cluster")
            refused = cluster.search(config, "on-sqlite")
            assert refused.returncode == 2, refused.stderr[-2000:]
            assert refused.stderr.strip().splitlines() == [
                "nas search: error: storage: the cluster has 2 nodes and a SQLite file on this one cannot be shared "
                "with the others; use a database every node reaches: --storage postgresql://USER:PASSWORD@HOST:5432/DB "
                "(pip install 'nas[postgres]'; createdb DB once on the database host)"]
            shared = cluster.search(config, "on-postgres", "--storage", url)
            assert shared.returncode == 0, shared.stderr[-3000:]
            rows = _rows(tmp_path / "runs" / "on-postgres")
            assert len(rows) == 3 and "FAIL" not in {r["state"] for r in rows}
            assert (tmp_path / "runs" / "on-postgres" / "best.yaml").is_file()
        finally:
            cluster.stop()
