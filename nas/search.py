"""The search loop on Optuna: sample, score, record; resumable; failures recorded, not fatal."""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas.config import SearchConfig
from nas.evaluate import CostSource, Rejected, evaluate, reward_of
from nas.progress import Progress
from nas.strategies import make_sampler
from searchspace import parse_genotype
from searchspace.errors import NasError
from searchspace.space import Space, space_from_dict

REASON = "reason"
DUPLICATE = "duplicate_of"
RESULT_ATTRS = ("accuracy", "cost", "reward", "epochs", "params")  # what a duplicate copies from its original


@dataclass
class Run:
    """Where a run lives and what it searches."""

    config: SearchConfig
    folder: Path
    storage: str
    space: Space

    @property
    def study_name(self) -> str:
        return self.folder.name


def prepare_run(config: SearchConfig) -> Run:
    """Create (or, with resume, reopen) the run folder; refuse to overwrite a finished run."""
    name = config.name or datetime.now().strftime("search-%Y%m%d-%H%M%S")
    config.name = name
    folder = Path(config.runs_dir) / name
    db = folder / "study.db"
    if folder.exists() and db.exists() and not config.resume and config.storage is None:
        raise NasError(f"name: run {str(folder)!r} exists; add --resume to continue it or pick another --name")
    if config.resume and config.storage is None and not db.exists():
        raise NasError(f"resume: no run to resume at {str(folder)!r}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    storage = config.storage or f"sqlite:///{db}"
    space = space_from_dict(config.space)
    space.config.head["num_classes"] = dataset_classes(config)
    return Run(config, folder, storage, space)


def dataset_classes(config: SearchConfig) -> int:
    """Load the proxy dataset once up front (a bad --proxy-data-dir fails before any trial)."""
    from predictors.datasets import load_dataset

    return load_dataset(config.proxy.dataset_spec()).num_classes


def create_study(run: Run) -> optuna.Study:
    """The run's study (created, or loaded for resume / a shared storage)."""
    cfg = run.config
    reward = reward_of(cfg)
    sampler = make_sampler(cfg.strategy, cfg.seed, population=cfg.population, tournament=cfg.tournament,
                           multi_objective=reward.multi_objective)
    pruner = {"median": optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
              "halving": optuna.pruners.SuccessiveHalvingPruner(),
              "none": optuna.pruners.NopPruner()}[cfg.pruner]
    if reward.multi_objective:
        pruner = optuna.pruners.NopPruner()  # Optuna prunes single-objective studies only
    directions = ["maximize", "minimize"] if reward.multi_objective else ["maximize"]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study = optuna.create_study(study_name=run.study_name, storage=run.storage, sampler=sampler,
                                    pruner=pruner, directions=directions, load_if_exists=True)
    except (ValueError, ImportError) as err:
        raise NasError(f"storage: cannot open {run.storage!r}: {err}") from None
    if cfg.resume:
        fail_interrupted(study)
    study.set_user_attr("config_hash", cfg.hash())
    return study


def fail_interrupted(study: optuna.Study) -> int:
    """Mark trials left RUNNING by a killed process as failed (reason: interrupted)."""
    n = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, REASON, "interrupted (process stopped)")
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        n += 1
    return n


class Objective:
    """The Optuna objective: sample a genotype, score it, record everything as user attributes."""

    def __init__(self, run: Run, progress: Progress | None = None) -> None:
        self.run = run
        self.cost_source = CostSource(run.config)
        self.multi = reward_of(run.config).multi_objective
        self.progress = progress

    def __call__(self, trial: optuna.Trial):
        genotype = self.run.space.sample(trial)
        trial.set_user_attr("genotype", genotype.to_dict(with_provenance=False))
        trial.set_user_attr("hash", genotype.hash())
        if self.progress:
            self.progress.candidate(trial.number, genotype)
        earlier = earlier_trial(trial.study, genotype.hash(), trial.number)
        if earlier is not None:  # the same network again (another params path to it): never retrained
            trial.set_user_attr(DUPLICATE, earlier.number)
            if earlier.state == TrialState.PRUNED:
                trial.set_user_attr(REASON, f"same network as trial {earlier.number}, which was pruned")
                raise optuna.TrialPruned()
            for key in RESULT_ATTRS:
                if key in earlier.user_attrs:
                    trial.set_user_attr(key, earlier.user_attrs[key])
            trial.set_user_attr("train_seconds", 0.0)
            trial.set_user_attr("cost_seconds", 0.0)
            return tuple(earlier.values) if self.multi else earlier.value

        def report(epoch: int, accuracy: float) -> None:
            trial.set_user_attr(f"acc_epoch_{epoch}", accuracy)
            if not self.multi:
                trial.report(accuracy, epoch)
                if trial.should_prune():
                    trial.set_user_attr(REASON, f"pruned after epoch {epoch} (accuracy {accuracy:.4f})")
                    raise optuna.TrialPruned()

        def on_cost(cost: float) -> None:
            trial.set_user_attr("cost", cost)

        try:
            result = evaluate(genotype, self.run.config, self.cost_source, report, on_cost)
        except Rejected as err:
            trial.set_user_attr(REASON, f"rejected before training: {err}")
            raise optuna.TrialPruned() from None
        except optuna.TrialPruned:
            raise
        except Exception as err:  # recorded as a failed trial; the search goes on
            trial.set_user_attr(REASON, failure_reason(err))
            raise
        for key, value in vars(result).items():
            trial.set_user_attr(key, value)
        return (result.accuracy, result.cost) if self.multi else result.reward


def earlier_trial(study: optuna.Study, genotype_hash: str, number: int) -> optuna.trial.FrozenTrial | None:
    """The first completed or pruned trial before ``number`` that scored the same network, if any.

    Failed trials do not count: a failure (out of memory, interrupted) may not happen again.
    """
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.number < number and t.user_attrs.get("hash") == genotype_hash:
            return t
    return None


def failure_reason(err: BaseException) -> str:
    """``Type: message (at file:line)`` of the innermost frame, for trials.csv and report.md."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}"[:400] + where


class StopOnFailures:
    """Stop the study after ``limit`` failed trials in a row."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.message: str | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        recent = trials[-self.limit:]
        if len(recent) == self.limit and all(t.state == TrialState.FAIL for t in recent):
            reason = recent[-1].user_attrs.get(REASON, "unknown")
            self.message = f"stopped: {self.limit} trials failed in a row; last reason: {reason}"
            study.stop()


def run_local(run: Run, study: optuna.Study, progress: Progress) -> str | None:
    """Run trials in this process until the trial count or the time budget is reached."""
    cfg = run.config
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("optuna").setLevel(logging.ERROR)
    finished = len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
    remaining = None if cfg.trials is None else max(0, cfg.trials - finished)
    if remaining == 0:
        return f"nothing to do: {finished} trials already finished (--trials {cfg.trials})"
    stopper = StopOnFailures(cfg.max_failures)
    objective = Objective(run, progress)
    start = time.monotonic()
    try:
        study.optimize(objective, n_trials=remaining, timeout=cfg.budget, catch=(Exception,),
                       callbacks=[progress.finished, stopper], gc_after_trial=True)
    except KeyboardInterrupt:
        fail_interrupted(study)
        return f"interrupted after {time.monotonic() - start:.0f}s; finished trials are kept (resume with --resume)"
    return stopper.message


def scored_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Completed trials that trained their own network (repeats of an earlier one left out)."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE and DUPLICATE not in t.user_attrs]


def best_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Best trial (single objective) or the Pareto front (multi-objective), completed trials only."""
    done = scored_trials(study)
    if not done:
        return []
    if len(study.directions) > 1:
        return sorted((t for t in study.best_trials if DUPLICATE not in t.user_attrs), key=lambda t: t.values[1])
    return [max(done, key=lambda t: t.value)]


def genotype_of(trial: optuna.trial.FrozenTrial):
    return parse_genotype(trial.user_attrs["genotype"])
