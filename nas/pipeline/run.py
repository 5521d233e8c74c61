"""From a latency target to a model you can ship, in one call: ``nas run`` and ``nas.run(...)``.

Five steps in one run folder (``RUNS_DIR/NAME/``), each a call into its own package: the search
(:func:`nas.search.run.search`: ``best.yaml``, ``trials.csv``, ``pareto.png``, ``report.md``), the full training of
the winner (:func:`nas.training.run.train` into ``train/``), the ONNX export with the trained weights and the
preprocessing in its metadata (:func:`nas.export.onnx.export_onnx`: ``model.onnx``), its verification
(:mod:`nas.pipeline.verify`: ``verify.json``) and the model card (:mod:`nas.pipeline.card`: ``card.md``).
``run.json`` (:mod:`nas.pipeline.state`) records each step: a resumed run keeps the finished ones and continues
the one that was running (the search resumes its study, the training its last epoch); once a step runs again,
the steps after it do too.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.common.text import clock, cost_text
from nas.config import SearchConfig
from nas.pipeline.card import CARD, write_card
from nas.pipeline.config import SEARCH_FILE, STEPS, RunPlan, plan_run, search_file_text
from nas.pipeline.progress import RunProgress
from nas.pipeline.state import RunState
from nas.pipeline.verify import Verification, measure_config, verify_export
from nas.training.load import TRAINED, read_result
from nas.training.outputs import BEST, GENOTYPE_FILE, RESULT
from predictors.latency.conditions import MeasureConfig
from searchspace import load_genotype
from searchspace.errors import NasError
from searchspace.textio import check_folder_creatable, write_text_atomic

ONNX, VERIFY = "model.onnx", "verify.json"
OUTPUTS = {"search": "best.yaml", "train": f"{TRAINED}/{RESULT}", "export": ONNX, "verify": VERIFY, "card": CARD}
REPETITIONS = ("warmup", "reps", "min_reps", "rounds", "min_rounds", "round_seconds", "target_spread")


@dataclass
class RunResult:
    """Where a run's outputs are and whether what ships was verified."""

    folder: Path
    ok: bool                        # every step done and the exported file's accuracy verified
    message: str                    # one line: what ships, or why nothing does
    steps: dict[str, str] = field(default_factory=dict)  # done, kept (finished before) or failed
    verification: Verification | None = None


@dataclass
class Collaborators:
    """What a test hands in instead of the real thing: the search's cost model, proxy trainer and finalists'
    trainer, and the repetitions of the verification's timing (its conditions stay the search's)."""

    cost_model: Any = None
    trainer: Any = None
    retrain: Any = None
    timing: MeasureConfig | None = None


class StepFailed(Exception):
    """A step ended without its output (not bad input): the run stops and says why."""


def run(config: str | Path | SearchConfig | None = None, *, train: Mapping[str, Any] | None = None,
        data: str | None = None, redo: str | None = None, quiet: bool = False, command: str | None = None,
        progress: RunProgress | None = None, collaborators: Collaborators | None = None,
        **settings: Any) -> RunResult:
    """Search, train the winner, export it, verify the export and write its model card, in ``RUNS_DIR/NAME``.

    ``config``: a search config (YAML file or object); ``settings``: search keys (``target_latency="20ms"``,
    ``budget="10m"``, ``name=``, ``resume=True``; ``proxy.epochs`` in the proxy section); ``train``: training keys
    (``{"epochs": 20}``); ``data``: a data set name or an ImageFolder folder, for the search and the training;
    ``redo``: run this step (export, verify or card) and the ones after it again. Bad input raises
    :class:`searchspace.NasError` before any step runs.
    """
    plan, state = plan_run(config, settings, train, data, redo)
    check_folder_creatable(plan.folder, "runs_dir")
    plan.check_data()
    plan.folder.mkdir(parents=True, exist_ok=True)
    if state is None:
        state = RunState(plan.folder, plan.search.to_dict(), plan.train, command=command)
    state.search, state.train = plan.search.to_dict(), plan.train
    state.save()
    if redo is not None:
        state.forget(list(STEPS[STEPS.index(redo):]))
    progress = progress or RunProgress(quiet)
    progress.header(str(plan.folder), resume_command(plan), plan.search.resume)
    pipeline = _Pipeline(plan, state, progress, collaborators or Collaborators(), quiet or progress.quiet)
    return pipeline.run_steps()


def resume_command(plan: RunPlan) -> str:
    """The command that continues this run after a stop."""
    runs = "" if plan.search.runs_dir == "runs" else f" --runs-dir {shlex.quote(plan.search.runs_dir)}"
    return f"nas run --name {shlex.quote(str(plan.search.name))}{runs} --resume"


@dataclass
class _Pipeline:
    plan: RunPlan
    state: RunState
    progress: RunProgress
    collaborators: Collaborators
    quiet: bool
    outcome: dict[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.plan.folder

    @property
    def trained_folder(self) -> Path:
        return self.folder / TRAINED

    def run_steps(self) -> RunResult:
        steps: dict[str, Callable[[], tuple[dict, str]]] = {
            "search": self.search, "train": self.train, "export": self.export, "verify": self.verify,
            "card": self.card}
        again = False  # once a step runs, the ones after it run too
        for step, work in steps.items():
            if not again and self.state.done(step) and (self.folder / OUTPUTS[step]).is_file():
                self.outcome[step] = "kept"
                self.progress.kept(step, OUTPUTS[step])
                continue
            again = True
            try:
                self._run_step(step, work)
            except StepFailed as err:
                self.outcome[step] = "failed"
                self.state.fail(step, str(err))
                return RunResult(self.folder, False, f"{step}: {err}", self.outcome)
        return self._result()

    def _run_step(self, step: str, work: Callable[[], tuple[dict, str]]) -> None:
        self.state.begin(step)
        start = time.monotonic()
        try:
            record, summary = work()
        except NasError as err:
            self.state.fail(step, str(err))
            raise
        seconds = time.monotonic() - start
        self.state.finish(step, seconds, **record)
        self.outcome[step] = "done"
        self.progress.done(step, seconds, summary)

    def search(self) -> tuple[dict, str]:
        from nas.search.run import search

        config = dataclasses.replace(self.plan.search)  # resume is set on this copy only
        config.resume = config.storage is not None or (self.folder / "study.db").exists()
        write_text_atomic(self.folder / SEARCH_FILE, search_file_text(config))
        budget = f"up to {clock(config.budget)} (its budget)" if config.budget else f"{config.trials} trials"
        self.progress.begin("search", f"target {cost_text(config.target, config.unit)}, {budget}; its lines show "
                                      "the time it has left")
        c = self.collaborators
        summary = search(config, quiet=self.quiet, cost_model=c.cost_model, trainer=c.trainer, retrain=c.retrain)
        winner = summary.winner
        if summary.best_path is None or winner is None:
            raise StepFailed(f"no candidate completed{': ' + summary.message if summary.message else ''}; nothing "
                             f"to train (see {self.folder}/report.md)")
        record = {"trials": summary.trials, "completed": summary.completed, "message": summary.message,
                  "winner_trial": winner.trial.number, "final_cost": winner.final_cost,
                  "within_target": winner.within_target, "note": winner.note, "fidelity_tau": winner.fidelity_tau,
                  "finalists": [dataclasses.asdict(f) for f in winner.finalists]}
        return record, (f"trial {winner.trial.number} of {summary.trials}, {cost_text(winner.final_cost, config.unit)}"
                        f", finalist accuracy {winner.accuracy:.4f}")

    def train(self) -> tuple[dict, str]:
        from nas.training.run import train

        settings, recipe = self.plan.train_settings(), self.plan.train_config()
        out = self.trained_folder
        resume = out.is_dir() and any(out.iterdir())
        self.progress.begin("train", f"{recipe.epochs} epochs on {recipe.dataset} at {recipe.resolution} px"
                                     f"{', resuming' if resume else ''}; the bar shows the time left")
        display = self.progress.training()
        try:
            result = train(self.folder / "best.yaml", progress=display, **settings, out=str(out), resume=resume)
        finally:
            display.close()
        record = {"test_accuracy": result.test_accuracy, "params": result.params, "macs": result.macs,
                  "epochs": result.epochs, "train_seconds": result.train_seconds}
        return record, f"test accuracy {result.test_accuracy:.4f}, {result.params:,} params"

    def _measure_config(self) -> MeasureConfig:
        """The search's measurement conditions, with the collaborators' repetitions if any."""
        config = measure_config(load_genotype(self.folder / "best.yaml"), self.plan.search)
        timing = self.collaborators.timing
        if timing is not None:
            config = dataclasses.replace(config, **{k: getattr(timing, k) for k in REPETITIONS})
        return config

    def export(self) -> tuple[dict, str]:
        from nas.export.onnx import export_onnx, prepare_model
        from nas.training.load import onnx_metadata

        trained = load_genotype(self.trained_folder / GENOTYPE_FILE)
        deploy = self._measure_config().resolution
        whole = trained.head.get("pool_size", 1) == 1  # a global pool takes any input size
        sizes = [deploy] if deploy != trained.resolution and whole else []
        self.progress.begin("export", f"{ONNX} at {trained.resolution} px" + (f" and {deploy} px" if sizes else ""))
        metadata = {**onnx_metadata(self.trained_folder, trained), "latency_resolution": str(deploy),
                    "source": f"nas run {self.plan.search.name}"}
        model = prepare_model(trained, weights=self.trained_folder / BEST)
        exported = export_onnx(model, self.folder / ONNX, metadata=metadata, sizes=sizes)
        record = {**exported.to_dict(), "latency_resolution": deploy if sizes or deploy == trained.resolution
                  else trained.resolution}
        return record, f"{ONNX}, max abs difference {exported.max_abs_diff:.2g} vs PyTorch"

    def verify(self) -> tuple[dict, str]:
        import torch

        from predictors.training.batches import training_data

        trained = load_genotype(self.trained_folder / GENOTYPE_FILE)
        config = dataclasses.replace(self._measure_config(),
                                     resolution=self.state.record("export")["latency_resolution"])
        self.progress.begin("verify", f"accuracy of {ONNX} on the test split in onnxruntime; latency at "
                                      f"{config.resolution} px in onnxruntime and PyTorch, side by side "
                                      f"(at most about {max(1.0, 2 * config.rounds * config.round_seconds):.0f} s)")
        recipe = dataclasses.replace(self.plan.train_config(), device="cpu")
        test = training_data(recipe, torch.device("cpu")).test
        target = self.plan.search.target if self.plan.search.unit == "ms" else None
        v = verify_export(self.folder / ONNX, trained, self.trained_folder / BEST, read_result(self.trained_folder),
                          test, config, target, recipe.channels_last)
        write_text_atomic(self.folder / VERIFY, json.dumps(v.to_dict(), indent=2) + "\n")
        said = "verified" if v.accuracy_ok else "NOT VERIFIED: more than 0.1 point from PyTorch's"
        return v.to_dict(), (f"accuracy {v.onnx_accuracy:.4f} in onnxruntime ({said} {v.torch_accuracy:.4f}); "
                             f"{v.onnx_ms:.2f} ms onnxruntime, {v.torch_ms:.2f} ms PyTorch")

    def card(self) -> tuple[dict, str]:
        self.progress.begin("card")
        path = write_card(self.plan, self.state, read_result(self.trained_folder), self.state.command)
        return {}, str(path)

    def _result(self) -> RunResult:
        v = Verification(**{k: val for k, val in self.state.record("verify").items()
                            if k in Verification.__dataclass_fields__})
        at = f"{v.onnx_ms:.2f} ms in onnxruntime at {v.latency_resolution} px"
        if v.target_ms is not None:
            at += f" ({'within' if v.within(v.onnx_ms) else 'NOT within'} T = {v.target_ms:g} ms)"
        if not v.accuracy_ok:
            message = (f"the exported file reaches {v.onnx_accuracy:.4f} on the test split, the trained network "
                       f"{v.torch_accuracy:.4f}: more than 0.1 point apart; {ONNX} is not verified (see "
                       f"{self.folder / CARD})")
            return RunResult(self.folder, False, message, self.outcome, v)
        message = (f"ships {self.folder / ONNX}: test accuracy {v.onnx_accuracy:.4f} (verified in onnxruntime), {at}; "
                   f"model card {self.folder / CARD}")
        return RunResult(self.folder, True, message, self.outcome, v)
