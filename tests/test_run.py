"""``nas run`` (nas.run): search, train, export, verify and card in one folder, on tiny synthetic data and a tiny
ImageFolder tree. A run killed during training resumes without searching again; a finished run resumes without
running any step; a broken export is caught; the preprocessing travels in the ONNX file and with nas.load."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import numpy_helper

import nas
from nas.cli import build_parser, main
from nas.commands.flags import flag_values
from nas.commands.run import train_values
from nas.config import SearchConfig, load_config
from nas.export.onnx import read_metadata
from nas.pipeline.config import plan_run
from nas.pipeline.progress import RunProgress
from nas.pipeline.run import Collaborators
from nas.training.preprocess import Preprocess
from nas.training.progress import TrainProgress
from nas.training.run import train_config
from predictors.latency.conditions import MeasureConfig
from predictors.training.loop import normalize_batch
from predictors.training.recipe import TrainConfig
from searchspace.settings import hashed_dict
from tests.search_helpers import FakeMeasuredCost, FakeTrainer, tiny_overrides, tiny_yaml
from tests.test_train import write_tree

QUICK = MeasureConfig(warmup=1, reps=6, min_reps=3, rounds=2, min_rounds=1, round_seconds=0.01)
TRAIN = {"epochs": 3, "subset": 256, "batch_size": 32, "threads": 1, "bn_images": 0}
FILES = ["best.yaml", "card.md", "config.json", "model.onnx", "pareto.csv", "pareto.png", "report.md", "run.json",
         "search.yaml", "study.db", "train", "trials.csv", "verify.json"]


def tiny_settings(tmp_path: Path, name: str, **extra) -> dict:
    """A tiny search (3 trials, 2 finalists with 1 fresh seed) aiming at 100 ms of fake latency."""
    return tiny_overrides(tmp_path, name, objective="latency", target_latency="100ms", trials=3, finalists=2,
                          finalist_seeds=1, **extra)


class KilledInEpoch2(TrainProgress):
    """As a kill during the second epoch: the first epoch's checkpoint is written, the second's never is."""

    def epoch(self, stats, best) -> None:
        if stats.epoch > 1:
            raise KeyboardInterrupt
        super().epoch(stats, best)


class KillTraining(RunProgress):
    def training(self) -> TrainProgress:
        return KilledInEpoch2(self.console, quiet=True)


def never(*args, **kwargs):
    raise AssertionError("the search ran again")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run killed in its second training epoch, then resumed to the end (with --resume alone)."""
    tmp = tmp_path_factory.mktemp("run")
    with pytest.raises(KeyboardInterrupt):
        nas.run(train=TRAIN, progress=KillTraining(quiet=True),
                collaborators=Collaborators(cost_model=FakeMeasuredCost(), timing=QUICK), **tiny_settings(tmp, "r"))
    folder = tmp / "runs" / "r"
    killed = json.loads((folder / "run.json").read_text())["steps"]
    trials = (folder / "trials.csv").read_bytes()
    epoch = torch.load(folder / "train" / "last.pt", weights_only=True)["loop"]["epoch"]
    resumed = nas.run(name="r", runs_dir=str(tmp / "runs"), resume=True, quiet=True, collaborators=Collaborators(
        cost_model=SimpleNamespace(unit="ms", cost=never, measure=never), trainer=never, retrain=never, timing=QUICK))
    return SimpleNamespace(folder=folder, result=resumed, killed=killed, trials=trials, killed_epoch=epoch)


def test_killed_in_training_resumes_without_searching_again(finished):
    assert {k: v["status"] for k, v in finished.killed.items()} == {"search": "done", "train": "running"}
    assert finished.killed_epoch == 1
    assert finished.result.steps == {"search": "kept", "train": "done", "export": "done", "verify": "done",
                                     "card": "done"}
    assert (finished.folder / "trials.csv").read_bytes() == finished.trials  # the search did not run again
    last = torch.load(finished.folder / "train" / "last.pt", weights_only=True)["loop"]
    assert last["epoch"] == 3 and len(last["history"]) == 3


def test_the_run_folder_ends_with_a_verified_model_and_its_card(finished):
    result, folder = finished.result, finished.folder
    assert result.ok and sorted(p.name for p in folder.iterdir()) == FILES
    trained = json.loads((folder / "train" / "result.json").read_text())
    verify = json.loads((folder / "verify.json").read_text())
    assert verify["test_images"] == 500 and verify["trained_accuracy"] == trained["test_accuracy"]
    assert verify["torch_accuracy"] == trained["test_accuracy"]  # float32 on the CPU, as nas train evaluated it
    assert verify["onnx_accuracy"] == trained["test_accuracy"] and verify["accuracy_ok"]
    assert (verify["resolution"], verify["latency_resolution"], verify["target_ms"]) == (16, 32, 100.0)
    assert verify["onnx_ms"] > 0 and verify["torch_ms"] > 0
    states = json.loads((folder / "run.json").read_text())["steps"]
    assert all(states[step]["status"] == "done" for step in ("search", "train", "export", "verify", "card"))
    card = (folder / "card.md").read_text()
    for heading in ("## What was asked", "## What the search saw", "## The trained network", "## The shipped file",
                    "## How to load it", "## Reproduce"):
        assert heading in card
    assert card.startswith("# Model card: r\n\n**Verified**: ")
    assert f"({verify['onnx_accuracy']:.4f} against {trained['test_accuracy']:.4f}, 500 images)" in card
    assert "![Pareto front" in card and "(pareto.png)" in card and "(train/curves.png)" in card
    assert "| trial | search accuracy | finalist accuracy" in card  # the finalists at both fidelities
    assert f"nas.load({str(folder)!r})" in card and "--resume --redo export" in card
    assert f"- parameters: {trained['params']:,}" in card


def test_the_cards_commands_ask_for_the_run_s_settings(finished):
    folder = finished.folder
    commands = dict(re.findall(r"^\| (.+?) \| `(nas .+)` \|$", (folder / "card.md").read_text(), re.M))
    searched = load_config(base=json.loads((folder / "run.json").read_text())["search"])  # the search as asked
    assert load_config(folder / "search.yaml").hash() == searched.hash()
    parser = build_parser()
    args = parser.parse_args(shlex.split(commands["the whole run, in a new folder"])[1:])
    plan, _ = plan_run(args.config, flag_values(args, SearchConfig), train_values(args), args.data)
    recipe = TrainConfig(**json.loads((folder / "train" / "result.json").read_text())["config"])
    assert plan.search.hash() == searched.hash() and plan.search.name == "r-again"
    assert hashed_dict(plan.train_config()) == hashed_dict(recipe)
    args = parser.parse_args(shlex.split(commands["the trained network: test accuracy, curves"])[1:])
    again = train_config(None, data=args.data, **flag_values(args, TrainConfig))
    assert hashed_dict(again) == hashed_dict(recipe) and again.out.endswith("r-train")


def test_onnx_metadata_round_trip_and_nas_load(finished, tmp_path):
    folder = finished.folder
    trained = json.loads((folder / "train" / "result.json").read_text())
    meta = read_metadata(folder / "model.onnx")
    shipped = Preprocess.from_metadata(meta)
    assert shipped == Preprocess(16, 3, False, trained["normalize"]["mean"], trained["normalize"]["std"],
                                 [str(i) for i in range(10)])
    assert meta["genotype_hash"] == nas.load_genotype(folder / "train" / "genotype.yaml").hash()
    assert meta["latency_resolution"] == "32"
    assert nas.load_preprocess(folder / "model.onnx") == shipped == nas.load_preprocess(folder)
    model = nas.load(folder)
    assert model.preprocess == shipped and model.pretrained_cfg["input_size"] == (3, 16, 16)
    assert not model.training
    # one test image through the preprocessing gives exactly what the training fed the network
    from predictors.data.load import load_dataset

    images, _ = load_dataset("synthetic", image_size=16).test.tensors
    from PIL import Image

    Image.fromarray(images[0].permute(1, 2, 0).numpy()).save(tmp_path / "image.png")
    x = model.preprocess(tmp_path / "image.png")
    norm = (torch.tensor(shipped.mean).view(1, -1, 1, 1), torch.tensor(shipped.std).view(1, -1, 1, 1), 3)
    assert torch.equal(x, normalize_batch(images[:1], norm))
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.allclose(session.run(None, {"input": x.numpy()})[0], expected, atol=1e-4)
    big = torch.randn(1, 3, 32, 32)  # the deployment resolution: height and width are dynamic axes
    with torch.no_grad():
        assert np.allclose(session.run(None, {"input": big.numpy()})[0], model(big).numpy(), atol=1e-4)


def copy_run(finished, tmp_path: Path) -> Path:
    shutil.copytree(finished.folder, tmp_path / "runs" / "r")
    return tmp_path / "runs"


def test_a_finished_run_resumes_without_running_any_step(finished, tmp_path, capsys):
    runs = copy_run(finished, tmp_path)
    before = {p.name: p.read_bytes() for p in (runs / "r").iterdir() if p.is_file() and p.name != "run.json"}
    assert main(["run", "--name", "r", "--runs-dir", str(runs), "--resume", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"nas run: ships {runs / 'r' / 'model.onnx'}: test accuracy ")
    after = {p.name: p.read_bytes() for p in (runs / "r").iterdir() if p.is_file() and p.name != "run.json"}
    assert after == before


def test_a_broken_export_fails_verification(finished, tmp_path):
    runs = copy_run(finished, tmp_path)
    path = runs / "r" / "model.onnx"
    graph = onnx.load(str(path))
    gemm = [n for n in graph.graph.node if n.op_type == "Gemm"][-1]  # the classifier
    for tensor in graph.graph.initializer:
        if tensor.name in gemm.input[1:]:  # its rows moved by one class: every prediction shifts
            tensor.CopyFrom(numpy_helper.from_array(np.roll(numpy_helper.to_array(tensor), 1, axis=0), tensor.name))
    onnx.save(graph, str(path))
    result = nas.run(name="r", runs_dir=str(runs), resume=True, redo="verify", quiet=True,
                     collaborators=Collaborators(timing=QUICK))
    assert not result.ok and "more than 0.1 point apart" in result.message
    assert result.steps == {"search": "kept", "train": "kept", "export": "kept", "verify": "done", "card": "done"}
    verify = json.loads((runs / "r" / "verify.json").read_text())
    assert not verify["accuracy_ok"] and verify["onnx_accuracy"] < verify["torch_accuracy"] - 0.2
    assert "**NOT VERIFIED**" in (runs / "r" / "card.md").read_text()


def test_resume_refuses_changed_settings_and_bad_input_is_one_line(finished, tmp_path, capsys):
    runs = str(copy_run(finished, tmp_path))
    cases = [
        (["--name", "r", "--runs-dir", runs, "--resume", "--epochs", "4"],
         "resume: the run was started with train.epochs=3, this command asks train.epochs=4"),
        (["--name", "r", "--runs-dir", runs], "name: run "),
        (["--name", "nothing", "--runs-dir", runs, "--resume"], "resume: no run to resume"),
        (["--name", "x", "--runs-dir", runs, "--redo", "export"], "redo: only with --resume"),
        (["--name", "x", "--runs-dir", runs, "--epochs", "0"], "epochs: 0 is out of range"),
        (["--name", "x", "--runs-dir", runs, "--data", "imagenet"], "'imagenet' is neither a data set"),
        (["--resume"], "name: give the run to resume"),
        (["--name", "x", "--runs-dir", runs, "--data-dir", str(tmp_path / "missing")],
         "no such fashion-mnist directory"),
        (["--name", "x", "--runs-dir", runs, "--data", str(tmp_path / "tree" / "train")], "no test split"),
    ]
    write_tree(tmp_path / "tree")
    for argv, message in cases:
        assert main(["run", *argv]) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and message in err, (argv, err)
    assert not (Path(runs) / "x").exists()
    with pytest.raises(nas.NasError, match="train.out: the run decides it"):
        nas.run(train={"out": "elsewhere"}, **tiny_settings(tmp_path, "y"))


def test_an_imagefolder_tree_ends_with_a_verified_model(tmp_path):
    write_tree(tmp_path / "tree", ("cat", "dog", "fox"))
    settings = {k: v for k, v in tiny_settings(tmp_path, "tree").items() if k != "proxy.dataset"}
    settings.update({"proxy.subset": None, "proxy.val_subset": None, "proxy.batch_size": 4})
    recipe = {**TRAIN, "subset": None, "workers": 0, "batch_size": 4, "val_fraction": 0.25}
    result = nas.run(data=str(tmp_path / "tree"), train=recipe,
                     quiet=True, collaborators=Collaborators(cost_model=FakeMeasuredCost(), trainer=FakeTrainer(),
                                                             retrain=lambda genotype, seed: 0.9, timing=QUICK),
                     **settings)
    folder = tmp_path / "runs" / "tree"
    assert result.ok and (folder / "card.md").is_file() and (folder / "model.onnx").is_file()
    verify = json.loads((folder / "verify.json").read_text())
    assert verify["accuracy_ok"] and verify["test_images"] == 9
    model = nas.load(folder)
    assert model.preprocess.classes == ["cat", "dog", "fox"]
    assert json.loads(read_metadata(folder / "model.onnx")["classes"]) == ["cat", "dog", "fox"]
    assert "3 classes (cat, dog, fox)" in (folder / "card.md").read_text()


@pytest.mark.slow
def test_killed_with_sigkill_during_training_resumes_without_searching_again(tmp_path, capsys):
    config = tiny_yaml(tmp_path, "k", trials=3, finalists=2, finalist_seeds=1)  # MACs target: no timing
    args = ["run", "--config", config, "--epochs", "20", "--subset", "512", "--batch-size", "32", "--threads", "1",
            "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "nas", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    metrics, deadline = tmp_path / "runs" / "k" / "train" / "metrics.csv", time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not (
            metrics.is_file() and len(metrics.read_text().splitlines()) > 1):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    folder = tmp_path / "runs" / "k"
    steps = json.loads((folder / "run.json").read_text())["steps"]
    assert steps["search"]["status"] == "done" and steps["train"]["status"] == "running"
    trials = (folder / "trials.csv").read_bytes()
    assert main(["run", "--name", "k", "--runs-dir", str(tmp_path / "runs"), "--resume", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("nas run: ships ")
    assert (folder / "trials.csv").read_bytes() == trials  # the search did not run again
    steps = json.loads((folder / "run.json").read_text())["steps"]
    assert all(steps[step]["status"] == "done" for step in steps) and (folder / "card.md").is_file()
    assert json.loads((folder / "train" / "result.json").read_text())["epochs"] == 20
