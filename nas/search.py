"""The search loop on Optuna: sample, score, record; resumable; failures recorded, not fatal.

:func:`prepare_run` builds a run's collaborators once (cost model, reward, trainer; each may be
handed in instead); the local loop and the Ray backend score and record candidates the same way
(:mod:`nas.scoring`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas.config import SearchConfig
from nas.cost_models import CostModel, cost_model_for
from nas.progress import Progress
from nas.reward import reward_for
from nas.scoring import (
    REASON,
    ProxyTrainer,
    Pruned,
    Scorer,
    Trainer,
    TrialRecord,
    record_attrs,
    record_values,
    reuse_earlier,
    score_candidate,
)
from nas.strategies import make_sampler
from searchspace.errors import NasError
from searchspace.space import Space, space_from_dict


@dataclass
class Run:
    """Where a run lives and what it searches."""

    config: SearchConfig
    folder: Path
    storage: str
    space: Space
    scorer: Scorer

    @property
    def study_name(self) -> str:
        return self.folder.name


def prepare_run(config: SearchConfig, cost_model: CostModel | None = None, trainer: Trainer | None = None) -> Run:
    """Create (or, with resume, reopen) the run folder and build the collaborators; refuse to overwrite
    a finished run. ``cost_model`` / ``trainer`` replace the configured ones (tests hand in fakes)."""
    scorer = Scorer(cost_model or cost_model_for(config), reward_for(config), trainer or ProxyTrainer(config.proxy))
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
    return Run(config, folder, storage, space, scorer)


def dataset_classes(config: SearchConfig) -> int:
    """Load the proxy dataset once up front (a bad --proxy-data-dir fails before any trial)."""
    from predictors.datasets import load_dataset

    return load_dataset(config.proxy.dataset_spec()).num_classes


def create_study(run: Run) -> optuna.Study:
    """The run's study (created, or loaded for resume / a shared storage)."""
    cfg = run.config
    reward = run.scorer.reward
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


class TrialFailed(Exception):
    """A candidate whose scoring failed (its reason is recorded); Optuna marks the trial FAIL."""


class Objective:
    """The Optuna objective: sample a genotype, score it (or reuse an earlier score), record it."""

    def __init__(self, run: Run, progress: Progress | None = None) -> None:
        self.run = run
        self.multi = run.scorer.reward.multi_objective
        self.progress = progress

    def __call__(self, trial: optuna.Trial):
        genotype = self.run.space.sample(trial)
        trial.set_user_attr("hash", genotype.hash())  # known while it runs (a killed run shows what it held)
        if self.progress:
            self.progress.candidate(trial.number, genotype)
        earlier = earlier_trial(trial.study, genotype.hash(), trial.number)
        if earlier is not None:  # the same network again (another params path to it): never retrained
            record = reuse_earlier(TrialRecord(genotype), earlier)
        else:
            record = score_candidate(genotype, self.run.scorer, self._reporter(trial))
        for key, value in record_attrs(record).items():
            trial.set_user_attr(key, value)
        if record.state == "PRUNED":
            raise optuna.TrialPruned(record.reason)
        if record.state == "FAIL":
            raise TrialFailed(record.reason)
        values = record_values(record, self.multi)
        return tuple(values) if self.multi else values[0]

    def _reporter(self, trial: optuna.Trial):
        def report(epoch: int, accuracy: float) -> None:
            if not self.multi:  # Optuna prunes single-objective studies only
                trial.report(accuracy, epoch)
                if trial.should_prune():
                    raise Pruned(f"pruned after epoch {epoch} (accuracy {accuracy:.4f})")

        return report


def earlier_trial(study: optuna.Study, genotype_hash: str, number: int) -> optuna.trial.FrozenTrial | None:
    """The first completed or pruned trial before ``number`` that scored the same network, if any.

    Failed trials do not count: a failure (out of memory, interrupted) may not happen again.
    """
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.number < number and t.user_attrs.get("hash") == genotype_hash:
            return t
    return None


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
