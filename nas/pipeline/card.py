"""The model card of a ``nas run``: ``card.md`` in the run folder, from the steps' records and files.

What was asked (T, data, budget), what the search saw (its candidates, the Pareto plot, the finalists at both
fidelities), the trained network (genotype, params, MACs, test accuracy, curves), the shipped file (its
verified accuracy and its latency in onnxruntime and PyTorch against T), how to load it, and the commands that
reproduce each number. The plots are the search's ``pareto.png`` and the training's ``train/curves.png``.
"""

from __future__ import annotations

import io
import shlex
from pathlib import Path
from typing import Any

from nas.common.text import clock, cost_text
from nas.pipeline.config import SEARCH_FILE, RunPlan
from nas.pipeline.state import RunState
from nas.search.finalists import Finalist, finalists_table
from nas.training.load import TRAINED
from predictors.training.recipe import TrainConfig
from searchspace import Genotype, load_genotype, with_scaling
from searchspace.settings import declared, flag_name
from searchspace.textio import write_text_atomic

CARD = "card.md"


def write_card(plan: RunPlan, state: RunState, train: dict[str, Any], command: str | None) -> Path:
    """Write ``card.md`` (atomically) and return its path."""
    folder = plan.folder
    trained = load_genotype(folder / TRAINED / "genotype.yaml")
    verify = state.record("verify")
    lines = [f"# Model card: {plan.search.name}", "", *_verdict(plan, verify), ""]
    lines += _asked(plan, train, command) + _searched(plan, state.record("search"))
    lines += _network(plan, trained, train, verify) + _shipped(plan, state.record("export"), verify)
    lines += _loading(folder) + _reproduce(plan)
    return write_text_atomic(folder / CARD, "\n".join(lines) + "\n")


def _verdict(plan: RunPlan, verify: dict[str, Any]) -> list[str]:
    if verify.get("accuracy_ok"):
        head = (f"**Verified**: `model.onnx`, run in onnxruntime, classifies the test split as the trained network "
                f"does ({verify['onnx_accuracy']:.4f} against {verify['torch_accuracy']:.4f}, "
                f"{verify['test_images']:,} images).")
    else:
        head = (f"**NOT VERIFIED**: `model.onnx`, run in onnxruntime, reaches {verify['onnx_accuracy']:.4f} on the "
                f"test split, the trained network {verify['torch_accuracy']:.4f}: more than 0.1 point apart. Do "
                "not ship it; `--redo export` exports it again.")
    return [head, "", f"Latency at {verify['latency_resolution']} px: onnxruntime {verify['onnx_ms']:.2f} ms, "
            f"PyTorch {verify['torch_ms']:.2f} ms" + _against_t(plan, verify) + "."]


def _against_t(plan: RunPlan, verify: dict[str, Any]) -> str:
    target = verify.get("target_ms")
    if target is None:
        return f" (the target is {cost_text(plan.search.target, plan.search.unit)}, not a latency)"
    met = [name for name, key in (("onnxruntime", "onnx_ms"), ("PyTorch", "torch_ms")) if verify[key] <= target]
    said = {2: "both meet it", 1: f"only {met[0] if met else ''} meets it", 0: "neither meets it"}[len(met)]
    return f"; T = {target:g} ms: {said}"


def _asked(plan: RunPlan, train: dict[str, Any], command: str | None) -> list[str]:
    s, recipe = plan.search, train["config"]
    classes = train.get("classes") or []
    shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
    return ["## What was asked", "", "| | |", "|---|---|",
            f"| target T | {cost_text(s.target, s.unit)} ({s.objective}, reward {s.reward}) |",
            f"| data | {s.proxy.dataset}{' at ' + s.proxy.data_dir if s.proxy.data_dir else ''}: "
            f"{train['num_classes']} classes ({shown}); images {_images(train['images'])} |",
            f"| search | budget {clock(s.budget) if s.budget else '-'}, trials {s.trials or '-'}, strategy "
            f"{s.strategy}, proxy {s.proxy.epochs} epoch(s) at {s.proxy.resolution} px, width x{s.proxy.width} |",
            f"| training | {recipe['epochs']} epochs, {recipe['optimizer']} lr {recipe['lr']:g}, batch "
            f"{recipe['batch_size']}, at {recipe['resolution']} px, width x{recipe['width']}, seed {recipe['seed']} |",
            *([f"| command | `{command}` |"] if command else []), ""]


def _images(images: dict[str, int]) -> str:
    return ", ".join(f"{split} {n:,}" for split, n in images.items())


def _searched(plan: RunPlan, search: dict[str, Any]) -> list[str]:
    unit = plan.search.unit
    lines = ["## What the search saw", "",
             f"{search.get('completed', 0)} of {search.get('trials', 0)} candidates completed in "
             f"{clock(search.get('wall_seconds', 0))}; every one is in `trials.csv`, the search's own report in "
             "`report.md`.", "", "![Pareto front: proxy accuracy against cost, with T](pareto.png)", ""]
    finalists = [Finalist(**f) for f in search.get("finalists") or []]
    if finalists:
        lines += ["The finalists, trained again with fresh seeds and measured again side by side (the search's "
                  "figures beside them); the winner is the best reward within T on these numbers:", ""]
        lines += finalists_table(finalists, unit) + [""]
    lines += [f"Winner: trial {search.get('winner_trial')}, {cost_text(search.get('final_cost'), unit)} measured "
              f"again, within T: {'yes' if search.get('within_target') else 'NO'}."]
    if search.get("note"):
        lines += ["", f"Warning: {search['note']}."]
    return lines + [""]


def _network(plan: RunPlan, trained: Genotype, train: dict[str, Any], verify: dict[str, Any]) -> list[str]:
    from predictors.cost import params_and_macs

    deploy = verify.get("latency_resolution") or plan.search.latency_resolution
    macs = params_and_macs(with_scaling(trained, resolution=deploy))[1]
    return ["## The trained network", "", f"`{TRAINED}/genotype.yaml`: {trained.name} (hash {trained.hash()}), "
            f"trained at {train['resolution']} px with width x{train['width']}.", "", "```",
            _stage_table(trained).rstrip(), "```", "",
            f"- parameters: {train['params']:,}",
            f"- MACs: {train['macs'] / 1e6:.1f}M at {train['resolution']} px, {macs / 1e6:.1f}M at {deploy} px",
            f"- test accuracy: **{train['test_accuracy']:.4f}** (best validation {train['best_val_accuracy']:.4f} at "
            f"epoch {train['best_epoch']} of {train['epochs']}; {clock(train['train_seconds'])} of training)",
            "", "![Training loss and validation accuracy per epoch](train/curves.png)", ""]


def _stage_table(genotype: Genotype) -> str:
    from rich.console import Console

    from nas.search.stage_table import print_genotype_table

    text = io.StringIO()
    print_genotype_table(genotype, Console(file=text, width=110))
    return text.getvalue()


def _shipped(plan: RunPlan, export: dict[str, Any], verify: dict[str, Any]) -> list[str]:
    target = verify.get("target_ms")
    sizes = export.get("sizes") or []
    axes = "batch, height and width dynamic" if sizes else "batch dynamic"
    rows = [("onnxruntime (`model.onnx`)", verify["onnx_ms"], verify["onnx_iqr_ms"]),
            ("PyTorch (`train/best.pt`)", verify["torch_ms"], verify["torch_iqr_ms"])]
    c = verify["conditions"]
    lines = ["## The shipped file", "",
             f"`model.onnx` ({export['method']}; input N x {export['in_channels']} x H x W, {axes}): it matches "
             f"PyTorch within {export['max_abs_diff']:.2g} (max abs, random input at "
             f"{', '.join(str(r) for r in [export['resolution'], *sizes])} px). Its metadata holds the "
             "preprocessing: resolution, per-channel mean and std (0-255 units), class names.", "",
             f"| test split ({verify['test_images']:,} images) | accuracy |", "|---|---|",
             f"| onnxruntime (`model.onnx`) | {verify['onnx_accuracy']:.4f} |",
             f"| PyTorch (`train/best.pt`, float32, the same inputs) | {verify['torch_accuracy']:.4f} |",
             f"| PyTorch, as `nas train` reported it | {verify['trained_accuracy']:.4f} |",
             "", f"Latency at {verify['latency_resolution']} px, the resolution T refers to (the search's), timed side "
             "by side in interleaved rounds:", "",
             "| runtime | median | IQR | meets T |", "|---|---|---|---|"]
    lines += [f"| {name} | {ms:.2f} ms | {iqr:.2f} ms | {_meets(ms, target)} |" for name, ms, iqr in rows]
    lines += ["", f"Conditions (the search's): {c['device']}, {c['threads']} thread(s), batch {c['batch']}, PyTorch in "
              f"{c['torch_memory_format']}; {c['cpu']} (fingerprint {c['fingerprint_id']}).", ""]
    if verify["resolution"] != verify["latency_resolution"]:
        lines += [f"The network was trained and its accuracy measured at {verify['resolution']} px; it takes any size, "
                  f"and at {verify['resolution']} px it runs faster than at {verify['latency_resolution']} px.", ""]
    return lines


def _meets(ms: float, target: float | None) -> str:
    return "-" if target is None else ("yes" if ms <= target else "**no**")


def _loading(folder: Path) -> list[str]:
    return ["## How to load it", "", "PyTorch (the trained network with its preprocessing):", "", "```python",
            "import nas", f"model = nas.load({str(folder)!r})",
            "probabilities = model(model.preprocess(\"image.png\")).softmax(1)  # model.preprocess.classes names them",
            "```", "", "onnxruntime:", "", "```python", "import nas, onnxruntime",
            f"session = onnxruntime.InferenceSession({str(folder / 'model.onnx')!r})",
            f"logits = session.run(None, {{\"input\": nas.load_preprocess({str(folder / 'model.onnx')!r})"
            "(\"image.png\").numpy()})[0]", "```", "",
            "Without `nas`: `session.get_modelmeta().custom_metadata_map` holds `resolution`, `mean`, `std` (JSON, "
            "0-255 units, per input channel), `grey`, `classes` and `interpolation`: resize the shorter side to "
            "`resolution`, centre-crop, `(pixel - mean) / std`.", ""]


def _reproduce(plan: RunPlan) -> list[str]:
    folder, name = plan.folder, plan.search.name
    q = shlex.quote
    rows = [("the whole run, in a new folder", run_command(plan)),
            ("the search: candidates, Pareto front, finalists, `best.yaml`",
             f"nas search --config {q(str(folder / SEARCH_FILE))} --name {q(name + '-search')}"),
            ("the winner's latency as the search measured it", f"nas latency {q(str(folder / 'best.yaml'))}"),
            ("the trained network: test accuracy, curves", train_command(plan)),
            ("the shipped file, its accuracy in onnxruntime and its latencies",
             f"nas run --name {q(name)} --runs-dir {q(plan.search.runs_dir)} --resume --redo export")]
    return (["## Reproduce", "", "| number | command |", "|---|---|"]
            + [f"| {what} | `{how}` |" for what, how in rows])


def run_command(plan: RunPlan) -> str:
    """A ``nas run`` command line that runs this run again, in a new folder."""
    from nas.pipeline.config import run_flag

    words = ["nas", "run", "--config", str(plan.folder / SEARCH_FILE), "--name", f"{plan.search.name}-again"]
    for key, value in plan.train.items():
        words += _flag_words(run_flag(key), key, value)
    return shlex.join(words)


def train_command(plan: RunPlan) -> str:
    """The ``nas train`` command line that trains the winner with this run's recipe, in a new folder."""
    settings = plan.train_settings()
    words = ["nas", "train", str(plan.folder / "best.yaml"), "--data",
             settings["data_dir"] if settings["dataset"] == "imagefolder" else settings["dataset"]]
    if settings["dataset"] != "imagefolder" and settings["data_dir"]:
        words += ["--data-dir", settings["data_dir"]]
    for key, value in settings.items():
        if key not in ("dataset", "data_dir") and value is not None:
            words += _flag_words(flag_name(key), key, value)
    return shlex.join(words + ["--out", str(plan.folder.with_name(f"{plan.search.name}-train"))])


def _flag_words(flag: str, key: str, value: Any) -> list[str]:
    """A flag and its value; a bare switch for a key that defaults to false (and nothing when it is false)."""
    if declared(TrainConfig)[key].param.default is False:
        return [flag] if str(value).lower() in ("true", "yes", "on", "1") else []
    return [flag, str(value).lower() if isinstance(value, bool) else str(value)]
