"""SIGTERM is Ctrl-C: every command stops with 143 after writing what it has; a search's interrupted network
and a training's unfinished epochs run again on --resume (real processes, real signals)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nas.cli import run_command
from nas.common.signals import Terminated, keep_sigterm, sigterm_as_interrupt
from tests.search_helpers import tiny_yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _command(func, **defaults) -> argparse.Namespace:
    return argparse.Namespace(command="fake", func=func, **defaults)


def test_sigterm_stops_any_command_with_143_and_one_line(capsys):
    def waits_for_sigterm(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the signal arrives first
        return 0

    before = signal.getsignal(signal.SIGTERM)
    assert run_command(_command(waits_for_sigterm, on_interrupt="continue with --resume")) == 143
    assert capsys.readouterr().err == "nas fake: stopped by SIGTERM; continue with --resume\n"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler lives only while a command runs


def test_ctrl_c_is_130_and_the_command_sees_sigterm_as_keyboard_interrupt(capsys):
    seen = []

    def handles_interrupts(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        except KeyboardInterrupt as stop:  # where a command handles Ctrl-C, it handles SIGTERM
            seen.append(type(stop))
        raise KeyboardInterrupt

    assert run_command(_command(handles_interrupts)) == 130
    assert seen == [Terminated] and capsys.readouterr().err == "nas fake: stopped by Ctrl-C\n"


def test_the_first_sigterm_raises_and_a_second_one_would_end_the_process():
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_as_interrupt():
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # while the outputs are written
    assert signal.getsignal(signal.SIGTERM) is before


def test_code_that_installs_its_own_handler_does_not_take_sigterm_away():
    with sigterm_as_interrupt():
        ours = signal.getsignal(signal.SIGTERM)
        with keep_sigterm():  # as ray.init does, which would exit at once
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
        assert signal.getsignal(signal.SIGTERM) is ours


def _rows(folder: Path) -> list[dict]:
    with (folder / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def _training_now(db: Path) -> bool:
    """A trial is training (it reported an epoch and is still running) after one trial completed."""
    try:
        with sqlite3.connect(db, timeout=1) as con:
            done = con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
            busy = con.execute("select count(*) from trials t join trial_intermediate_values v "
                               "on v.trial_id = t.trial_id where t.state = 'RUNNING'").fetchone()[0]
    except sqlite3.OperationalError:  # no tables yet, or locked for a moment
        return False
    return done >= 1 and busy >= 1


def _wait(proc: subprocess.Popen, ready, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the process ended before it could be stopped"


@pytest.mark.slow
def test_sigterm_to_a_search_then_resume_ends_with_every_network_trained(tmp_path):
    config = tiny_yaml(tmp_path, "term", trials=3, **{"proxy.epochs": 12})
    folder = tmp_path / "runs" / "term"
    cmd = [sys.executable, "-m", "nas", "search", "--config", config, "--quiet"]
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait(proc, lambda: _training_now(folder / "study.db"))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "nas search: stopped by SIGTERM; continue with --resume (finished trials " \
                                           "are kept)"
    rows = _rows(folder)
    stopped = [r for r in rows if r["state"] == "FAIL"]
    assert len(stopped) == 1 and stopped[0]["reason"] == "interrupted (SIGTERM)"
    assert [r["state"] for r in rows].count("WAITING") == 1  # its network, queued to run again
    assert "stopped by SIGTERM" in (folder / "report.md").read_text() and (folder / "best.yaml").is_file()

    resumed = subprocess.run([*cmd, "--resume"], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    rows = _rows(folder)
    completed = [r["hash"] for r in rows if r["state"] == "COMPLETE"]
    assert len(completed) == 3 and stopped[0]["hash"] in completed  # trials 3: three networks, none lost
    assert [r["state"] for r in rows].count("FAIL") == 1 and "stopped" not in (folder / "report.md").read_text()


def _finished_epochs(out: Path) -> int:
    metrics = out / "metrics.csv"
    return max(0, len(metrics.read_text().splitlines()) - 1) if metrics.is_file() else 0


@pytest.mark.slow
def test_sigterm_to_a_training_then_resume_finishes_it(tmp_path):
    from tests.test_train import TINY

    genotype = tmp_path / "tiny.yaml"
    genotype.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas", "train", str(genotype), "--data", "synthetic", "--resolution", "16",
           "--subset", "512", "--batch-size", "32", "--threads", "1", "--epochs", "5", "--quiet", "--json",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait(proc, lambda: _finished_epochs(out) >= 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "nas train: stopped by SIGTERM; continue with --resume (finished epochs " \
                                           "are kept)"
    kept = _finished_epochs(out)
    assert 1 <= kept < 5 and (out / "last.pt").is_file() and not (out / "result.json").exists()
    resumed = subprocess.run([*cmd, "--resume"], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs"] == 5 and _finished_epochs(out) == 5
