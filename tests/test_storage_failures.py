"""Storage that fails under a search or a training ends in one line naming the path or URL and what to do,
exit status 1, finished work kept; a PostgreSQL server restarted mid-search costs seconds. Real errors, a real
lock, a real full filesystem (a size-limited tmpfs in a private mount namespace), a folder made read-only, a
file size limit, and a real server."""

from __future__ import annotations

import csv
import errno
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.common.failures import diagnose, storage_failure
from nas.config import load_config
from nas.search.run import search
from searchspace.errors import StorageFailure
from tests.postgres_server import _free_port, restartable_postgres
from tests.search_helpers import FakeCost, FakeTrainer, tiny_overrides, tiny_yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
THEN = "then continue with --resume (finished trials are kept)"


def _rows(folder: Path) -> list[dict]:
    try:
        with (folder / "trials.csv").open() as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def _finished(folder: Path) -> int:
    return sum(r["state"] in ("COMPLETE", "PRUNED", "FAIL") for r in _rows(folder))


def _completed(folder: Path) -> int:
    return sum(r["state"] == "COMPLETE" for r in _rows(folder))


def _db_states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("select state, count(*) from trials group by state").fetchall())


def _counted(db: Path) -> int:
    """Finished trials (a tiny candidate may fail at chance: a result that counts)."""
    states = _db_states(db)
    return sum(states.get(state, 0) for state in ("COMPLETE", "PRUNED", "FAIL"))


def test_real_storage_errors_become_one_line_naming_the_path_or_url(tmp_path):
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "trials.csv"))
    assert str(storage_failure(full, tmp_path)) == (
        f"storage: cannot write {tmp_path}/trials.csv: the disk is full (No space left on device); free some space "
        "(or use a folder on another disk), then run the same command again")
    db = tmp_path / "s.db"
    with sqlite3.connect(db) as con:
        con.execute("create table t (x)")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            con.execute("insert into t values (1)")
    except sqlite3.OperationalError as err:
        readonly = err
    try:  # as the search meets it: wrapped by Optuna, and again by an assertion in its trial loop
        try:
            raise RuntimeError("An exception is raised during the commit.") from readonly
        except RuntimeError:
            raise AssertionError("Should not reach.")  # noqa: B904 (the chain Optuna makes)
    except AssertionError as err:
        chained = err
    assert str(storage_failure(chained, tmp_path, f"sqlite:///{db}")).startswith(
        f"storage: cannot write {db}: it is read-only or not writable (attempt to write a readonly database); "
        "make it writable")
    assert storage_failure(ValueError("not a storage error"), tmp_path) is None


def test_a_lost_database_server_is_transient_and_its_password_is_not_shown():
    psycopg = pytest.importorskip("psycopg")
    url = f"postgresql://nas:secret@127.0.0.1:{_free_port()}/runs"
    try:
        psycopg.connect(url, connect_timeout=2)
    except psycopg.OperationalError as err:
        refused = err
    assert diagnose(refused).transient
    text = str(storage_failure(refused, url=url))
    assert text.startswith(f"storage: cannot reach postgresql://nas:***@127.0.0.1:{url.split(':')[3]}: the connection "
                           "to the database server was lost (") and "secret" not in text


class LockingTrainer(FakeTrainer):
    """At its ``at``-th training, another connection takes an exclusive lock on the study's database (as
    another process would) and keeps it."""

    def __init__(self, db: Path, at: int) -> None:
        super().__init__()
        self.db, self.at, self.lock = db, at, None

    def __call__(self, genotype, report=None):
        if len(self.trained) + 1 == self.at:
            self.lock = sqlite3.connect(self.db, isolation_level=None)
            self.lock.execute("BEGIN EXCLUSIVE")
        return super().__call__(genotype, report)


@pytest.mark.slow
def test_a_database_locked_for_too_long_stops_the_search_in_one_line(tmp_path):
    db = tmp_path / "runs" / "locked" / "study.db"
    trainer = LockingTrainer(db, at=2)
    config = load_config(overrides=tiny_overrides(tmp_path, "locked", trials=4, storage_patience="1s"))
    try:
        with pytest.raises(StorageFailure) as failure:
            search(config, quiet=True, cost_model=FakeCost(), trainer=trainer)
    finally:
        if trainer.lock is not None:
            trainer.lock.close()
    assert str(failure.value).startswith(f"storage: cannot write {db}: the database stayed locked by another "
                                         "process (database is locked, retried for ")
    assert str(failure.value).endswith(f"stop the process that holds it, {THEN}")
    assert _db_states(db)["COMPLETE"] == 1  # the finished trial is kept


SCRIPT = r"""
set -u
mount -t tmpfs -o size=16m tmpfs "$RUNS" || exit 90
"$PY" -m nas search --config "$CFG" --quiet --runs-dir "$RUNS" 2> "$OUT/stderr" &
pid=$!
while kill -0 $pid 2>/dev/null; do
  n=$(grep -c ',COMPLETE,' "$RUNS/$NAME/trials.csv" 2>/dev/null || true)
  [ "${n:-0}" -ge 2 ] && break
  sleep 0.1
done
cat /dev/zero > "$RUNS/filler" 2>/dev/null
wait $pid; rc=$?
cp -r "$RUNS/$NAME" "$OUT/"
exit $rc
"""


def _namespace() -> list[str]:
    """``unshare`` into a private mount namespace (a user namespace too when not root)."""
    return ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]


def _can_mount_tmpfs(folder: Path) -> str:
    """Why a private size-limited tmpfs cannot be mounted here ("" when it can)."""
    if shutil.which("unshare") is None:
        return "no unshare command"
    probe = subprocess.run([*_namespace(), "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', str(folder)],
                           capture_output=True, text=True)
    return "" if probe.returncode == 0 else f"cannot mount a tmpfs in a private namespace: {probe.stderr.strip()}"


def _resume(config: str, runs: Path, trials: int) -> None:
    resumed = subprocess.run([sys.executable, "-m", "nas", "search", "--config", config, "--quiet", "--runs-dir",
                              str(runs), "--resume", "--trials", str(trials), "--finalists", "1"], env=ENV, cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_a_disk_that_fills_mid_search(tmp_path):
    mount, out = tmp_path / "mnt", tmp_path / "out"
    mount.mkdir()
    out.mkdir()
    why = _can_mount_tmpfs(mount)
    if why:
        pytest.skip(why)
    config = tiny_yaml(tmp_path, "fs", trials=30)
    env = {**ENV, "RUNS": str(mount), "OUT": str(out), "CFG": config, "PY": sys.executable, "NAME": "fs"}
    done = subprocess.run([*_namespace(), "sh", "-c", SCRIPT], env=env, cwd=ROOT, timeout=600)
    err = (out / "stderr").read_text()
    assert done.returncode == 1 and len(err.strip().splitlines()) == 1, err
    assert re.fullmatch(rf"nas search: storage: cannot write {mount}/fs\S*: the disk is full \((database or disk is "
                        rf"full|No space left on device)\); free some space .*, {re.escape(THEN)}\n", err), err
    assert _db_states(out / "fs" / "study.db")["COMPLETE"] >= 2  # finished trials are kept
    runs = tmp_path / "again"  # ... and go on elsewhere with --resume
    runs.mkdir()
    shutil.copytree(out / "fs", runs / "fs")
    _resume(config, runs, 3)
    assert _counted(runs / "fs" / "study.db") == 3


def _unprivileged(cmd: list[str]) -> list[str]:
    """``cmd`` without the capabilities that let root write into any folder (unchanged for other users)."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: a folder's permissions cannot stop this command")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *cmd]


@pytest.mark.slow
def test_a_run_folder_that_is_not_writable_is_refused_before_any_work(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o555)
    config = tiny_yaml(tmp_path, "nw", trials=2)
    done = subprocess.run(_unprivileged([sys.executable, "-m", "nas", "search", "--config", config, "--quiet"]),
                          env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and done.stderr == (f"nas search: error: runs_dir: cannot create {str(runs / 'nw')!r}: "
                                                    f"the folder {str(runs)!r} is not writable\n"), done.stderr


@pytest.mark.slow
def test_a_run_folder_that_turns_read_only_mid_search(tmp_path):
    config = tiny_yaml(tmp_path, "ro", trials=30)
    folder = tmp_path / "runs" / "ro"
    cmd = _unprivileged([sys.executable, "-m", "nas", "search", "--config", config, "--quiet"])
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait(proc, lambda: _completed(folder) >= 2)
    folder.chmod(0o555)
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        folder.chmod(0o755)
    assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
    assert re.fullmatch(rf"nas search: storage: cannot write {folder}\S*: it is read-only or not writable \(.*\); "
                        rf"make it writable \(or use another folder\), {re.escape(THEN)}\n", err), err
    assert _db_states(folder / "study.db")["COMPLETE"] >= 2  # finished trials are kept
    _resume(config, tmp_path / "runs", 3)
    assert _counted(folder / "study.db") == 3


def _small_files() -> None:
    """In the child: no file may grow beyond 4 kB (a write past it fails with EFBIG, as on a full quota)."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


@pytest.mark.slow
def test_a_training_whose_checkpoint_cannot_be_written_stops_in_one_line(tmp_path):
    import yaml

    from tests.test_train import TINY

    genotype, out = tmp_path / "tiny.yaml", tmp_path / "out"
    genotype.write_text(yaml.safe_dump(TINY))  # a few hundred bytes; a checkpoint is tens of kB
    done = subprocess.run([sys.executable, "-m", "nas", "train", str(genotype), "--data", "synthetic", "--resolution",
                           "16", "--subset", "256", "--threads", "1", "--epochs", "2", "--quiet", "--out", str(out)],
                          preexec_fn=_small_files, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and done.stderr == (
        f"nas train: storage: cannot write {out}: the file size limit is reached (File too large); raise the limit "
        "(ulimit -f) or use another folder, then continue with --resume (finished epochs are kept)\n"), done.stderr


def _wait(proc: subprocess.Popen, ready, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]


@pytest.mark.slow
def test_a_postgresql_restart_mid_search_costs_seconds_and_a_server_gone_for_good_one_line(tmp_path):
    pytest.importorskip("psycopg")
    with restartable_postgres() as (server, why):
        if server is None:
            pytest.skip(why)
        config = tiny_yaml(tmp_path, "pg", trials=4, storage=server.url, **{"proxy.epochs": 4})
        folder = tmp_path / "runs" / "pg"
        cmd = [sys.executable, "-m", "nas", "search", "--config", config, "--quiet"]
        proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait(proc, lambda: _finished(folder) >= 1)
        server.stop()  # ends every connection, as a restart does
        time.sleep(3)
        server.start()
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "Traceback" not in err, err
        rows = _rows(folder)  # nothing lost to the restart (a tiny candidate may end at chance: a result)
        assert len(rows) == 4 and all(r["state"] == "COMPLETE" or "at chance" in r["reason"] for r in rows), rows

        proc = subprocess.Popen([*cmd, "--resume", "--trials", "8", "--storage-patience", "3s"], env=ENV, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait(proc, lambda: _finished(folder) >= 5)
        server.stop()  # and it does not come back
        _, err = proc.communicate(timeout=600)
        server.start()
        line = err.strip().splitlines()[-1]
        assert proc.returncode == 1 and "Traceback" not in err, err
        assert line.startswith(f"nas search: storage: cannot reach {server.url}: the connection to the database "
                               "server was lost (") and line.endswith(f"check that the server is up and reachable, {THEN}")
        import optuna

        from nas.search.storage import open_storage

        study = optuna.load_study(study_name="pg", storage=open_storage(server.url))
        assert len([t for t in study.trials if t.state.is_finished()]) >= 5  # finished trials are kept
