"""``nas train`` on the command line: kill -9 then --resume ends exactly like an uninterrupted run, the
weights flow on to ``nas export``, and bad input is one line with exit status 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from nas.cli import main
from nas.export.onnx import read_metadata
from tests.test_train import TINY  # one tiny genotype for both train test files

RECIPE = ["--data", "synthetic", "--resolution", "16", "--subset", "512", "--batch-size", "32", "--threads", "1"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def genotype(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def nas_process(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas", "train", *args]


def finished_epochs(out: Path) -> int:
    metrics = out / "metrics.csv"
    return max(0, len(metrics.read_text().splitlines()) - 1) if metrics.is_file() else 0


@pytest.mark.slow
def test_resume_after_kill_matches_an_uninterrupted_run(genotype, tmp_path, capsys):
    args = [str(genotype), *RECIPE, "--epochs", "6", "--quiet", "--json"]
    assert main(["train", *args, "--out", str(tmp_path / "whole")]) == 0  # uninterrupted, in this process
    whole = capsys.readouterr().out
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(nas_process(*args, "--out", str(killed)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    deadline = time.monotonic() + 240
    while finished_epochs(killed) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= finished_epochs(killed) < 6 and not (killed / "result.json").exists()  # killed mid-run
    resumed = subprocess.run(nas_process(*args, "--out", str(killed), "--resume"), capture_output=True, text=True,
                             env=env, cwd=ROOT, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(whole), json.loads(resumed.stdout)
    assert b["test_accuracy"] == a["test_accuracy"] and b["best_epoch"] == a["best_epoch"]
    assert b["best_val_accuracy"] == a["best_val_accuracy"] and b["epochs"] == 6
    history = [torch.load(d / "last.pt", weights_only=True)["loop"]["history"] for d in (tmp_path / "whole", killed)]
    assert [(h["train_loss"], h["val_accuracy"], h["lr"]) for h in history[0]] == \
           [(h["train_loss"], h["val_accuracy"], h["lr"]) for h in history[1]]
    best = [torch.load(d / "best.pt", weights_only=True) for d in (tmp_path / "whole", killed)]
    assert best[0].keys() == best[1].keys() and all(torch.equal(best[0][k], best[1][k]) for k in best[0])


def test_weights_flow_on_to_export(genotype, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(genotype), *RECIPE, "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("test accuracy ") and f"nas export {out}/genotype.yaml --weights {out}/best.pt" in printed
    assert main(["export", str(out / "genotype.yaml"), "--weights", str(out / "best.pt"), "--format", "onnx",
                 "-o", str(tmp_path / "m.onnx")]) == 0
    assert main(["export", str(genotype), "--weights", str(out / "best.pt"), "--format", "torchscript",
                 "-o", str(tmp_path / "m.pt")]) == 0  # the genotype as given: width 1, same classes
    assert (tmp_path / "m.onnx").stat().st_size > 0 and (tmp_path / "m.pt").stat().st_size > 0
    meta = read_metadata(tmp_path / "m.onnx")  # the trained network's preprocessing travels with it
    result = json.loads((out / "result.json").read_text())
    assert (meta["resolution"], json.loads(meta["mean"]), json.loads(meta["classes"])) == (
        "16", result["normalize"]["mean"], [str(i) for i in range(10)])
    assert main(["export", str(genotype), "--weights", str(out / "best.pt"), "--format", "onnx", "--resolution",
                 "32", "-o", str(tmp_path / "other.onnx")]) == 0
    assert read_metadata(tmp_path / "other.onnx") == {}  # another size than the trained one: no preprocessing


def test_a_zoo_network_gets_a_classifier_for_the_data(tmp_path, capsys):
    out = tmp_path / "zoo"
    assert main(["train", "zoo:mobilenet_v3_small", *RECIPE, "--resolution", "32", "--epochs", "1", "--quiet",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == ["head: the genotype has 1000 classes and the data (synthetic) 10: its classifier is "
                                "replaced by a new one for 10 classes (as timm's create_model(..., num_classes=10))"]
    assert json.loads((out / "result.json").read_text())["replaced_head"] == 1000


def one_line_error(argv: list[str], capsys) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    return err


def test_bad_input_is_one_line(genotype, tmp_path, capsys):
    out = str(tmp_path / "out")
    (tmp_path / "empty").mkdir()
    base = ["train", str(genotype), "--resolution", "16", "--epochs", "1", "--quiet", "--out", out]
    cases = [
        (["--data", "imagenet"], "'imagenet' is neither a data set"),
        (["--data", "fashion-mnist", "--data-dir", str(tmp_path / "missing")], "no such fashion-mnist directory"),
        (["--data", str(tmp_path / "empty")], "no class folders with images"),
        (["--data", "synthetic", "--epochs", "0"], "epochs: 0 is out of range"),
        (["--data", "synthetic", "--num-classes", "7"], "num_classes: 7 is not the data's number of classes"),
        (["--data", "synthetic", "--optimizer", "lion"], "optimizer: lion is not one of sgd, adamw"),
        (["--data", "synthetic", "--dataset", "mnist"], "give the data set either as data or as dataset"),
    ]
    for extra, message in cases:
        assert message in one_line_error(base + extra, capsys), extra
    assert not Path(out).exists()  # nothing was written
    Path(out).mkdir()
    (Path(out) / "last.pt").write_bytes(b"not a checkpoint")
    err = one_line_error(base + ["--data", "synthetic", "--resume"], capsys)
    assert "last.pt: not a readable checkpoint" in err
    assert (Path(out) / "last.pt").read_bytes() == b"not a checkpoint"
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in one_line_error(base[:-1] + [str(tmp_path / "file"), "--data", "synthetic"],
                                                       capsys)
