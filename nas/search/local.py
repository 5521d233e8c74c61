"""The local search loop on Optuna: sample, score (or reuse), record; resumable; a failed trial is
recorded, not fatal; Ctrl-C or SIGTERM fails this process's running trial with its reason, queues its
network again (:mod:`nas.search.retry`) and leaves finished trials for --resume."""

from __future__ import annotations

import logging
import time

import optuna
from optuna.trial import TrialState

from nas.common.signals import stop_name
from nas.search.outputs import write_trials
from nas.search.progress import Progress
from nas.search.pruning import Checks, pruned_reason
from nas.search.retry import StopAtTrials, counted, queue_again
from nas.search.scoring import REASON, Pruned, earlier_trial, record_attrs, record_values, score_or_reuse
from nas.search.setup import Run


def interrupted(err: BaseException) -> str:
    """The reason recorded for a trial stopped by ``err``: ``interrupted (Ctrl-C)`` or ``interrupted (SIGTERM)``."""
    return f"interrupted ({stop_name(err)})"


class TrialFailed(Exception):
    """A candidate whose scoring failed (its reason is recorded); Optuna marks the trial FAIL."""


class Objective:
    """The Optuna objective: sample a genotype, score it (or reuse an earlier score), record it."""

    def __init__(self, run: Run, progress: Progress | None = None) -> None:
        self.run = run
        self.current: optuna.Trial | None = None  # the trial this process runs now
        self.multi = run.scorer.reward.multi_objective
        self.progress = progress

    def __call__(self, trial: optuna.Trial):
        self.current = trial
        genotype = self.run.space.sample(trial)
        trial.set_user_attr("hash", genotype.hash())  # known while it runs (a killed run shows what it held)
        if self.progress:
            self.progress.candidate(trial.number, genotype)
        earlier = earlier_trial(trial.study, genotype.hash(), trial.number)
        try:
            record = score_or_reuse(genotype, self.run.scorer, earlier, self._reporter(trial))
        except KeyboardInterrupt as stop:  # recorded while the trial still runs (Optuna then marks it failed)
            trial.set_user_attr(REASON, interrupted(stop))
            raise
        for key, value in record_attrs(record).items():
            trial.set_user_attr(key, value)
        if record.state == "PRUNED":
            raise optuna.TrialPruned(record.reason)
        if record.state == "FAIL":
            raise TrialFailed(record.reason)
        values = record_values(record, self.multi)
        return tuple(values) if self.multi else values[0]

    def _reporter(self, trial: optuna.Trial):
        """Reports at every check of the proxy training to Optuna's pruner, which may stop the candidate from
        half an epoch on; never at the last check (a finished training has nothing left to save)."""
        checks = Checks.of(self.run.config.proxy)

        def report(epochs_done: float, accuracy: float) -> None:
            if self.multi:  # Optuna prunes single-objective studies only
                return
            check = checks.number(epochs_done)
            trial.report(accuracy, check)
            if checks.may_prune(check) and trial.should_prune():
                raise Pruned(pruned_reason(epochs_done, checks, accuracy))

        return report


class StopOnFailures:
    """Stop the study after ``limit`` failed trials in a row."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.message: str | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials = counted(study.get_trials(deepcopy=False))  # an interrupted trial is not a failure
        recent = trials[-self.limit:]
        if len(recent) == self.limit and all(t.state == TrialState.FAIL for t in recent):
            reason = recent[-1].user_attrs.get(REASON, "unknown")
            self.message = f"stopped: {self.limit} trials failed in a row; last reason: {reason}"
            study.stop()


class ReserveForFinalists:
    """Stop the search early enough that the finalists' fresh trainings (the two leaders' further ones
    included) and careful measurements fit in the budget (estimated from the median training time of the
    trials so far)."""

    MEASURE_SECONDS = 7.0  # a careful side-by-side latency measurement, per network

    def __init__(self, run: Run, start: float) -> None:
        self.run, self.start = run, start
        self.message: str | None = None

    def estimate(self, study: optuna.Study) -> float:
        cfg = self.run.config
        times = sorted(t.user_attrs["train_seconds"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                       if t.user_attrs.get("train_seconds"))
        if cfg.finalists <= 1 or not times:
            return 0.0
        epochs = (cfg.finalist_epochs or cfg.proxy.epochs) / cfg.proxy.epochs
        settling = 2 * max(0, cfg.finalist_max_seeds - cfg.finalist_seeds)  # the two leaders' further trainings
        train = (cfg.finalists * cfg.finalist_seeds + settling) * times[len(times) // 2] * epochs
        measured = hasattr(self.run.scorer.cost_model, "measure")
        return train + (cfg.finalists * self.MEASURE_SECONDS if measured else 0.0)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        budget = self.run.config.budget
        if budget is None:
            return
        reserve = self.estimate(study)
        if time.monotonic() - self.start + reserve >= budget:
            self.message = f"search stopped early to leave ~{reserve:.0f}s of the budget for the finalists"
            study.stop()


def stop_own_trial(study: optuna.Study, trial: optuna.Trial | None, stop: BaseException) -> None:
    """This process's own trial, stopped by Ctrl-C or SIGTERM: failed with its reason, and its network queued
    to run again (other workers' trials untouched)."""
    if trial is None:
        return
    frozen = study._storage.get_trial(trial._trial_id)
    if frozen.state == TrialState.RUNNING:  # a finished trial cannot be updated (its reason is already set)
        study._storage.set_trial_user_attr(trial._trial_id, REASON, interrupted(stop))
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        frozen = study._storage.get_trial(trial._trial_id)
    if frozen.state == TrialState.FAIL and str(frozen.user_attrs.get(REASON, "")).startswith("interrupted"):
        queue_again(study, frozen)


def run_local(run: Run, study: optuna.Study, progress: Progress, spent: float = 0.0) -> str | None:
    """Run trials in this process until the trial count or the time budget (less ``spent`` seconds, used
    before the loop) is reached. Ctrl-C or SIGTERM: this process's trial is stopped (:func:`stop_own_trial`)
    and the interrupt raised again."""
    cfg = run.config
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("optuna").setLevel(logging.ERROR)
    finished = len(counted(study.get_trials(deepcopy=False)))
    remaining = None if cfg.trials is None else max(0, cfg.trials - finished)
    if remaining == 0:
        return f"nothing to do: the study already holds {finished} finished trials (trials: {cfg.trials})"
    stopper = StopOnFailures(cfg.max_failures)
    objective = Objective(run, progress)
    callbacks = [progress.finished, stopper, lambda s, t: write_trials(run.folder, s)]
    if cfg.trials is not None:  # the count is the study's: all workers together
        callbacks.append(StopAtTrials(cfg.trials))
    start = time.monotonic() - spent
    reserve = ReserveForFinalists(run, start)
    callbacks.append(reserve)
    try:
        timeout = None if cfg.budget is None else max(1.0, cfg.budget - spent)
        study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(Exception,),
                       callbacks=callbacks, gc_after_trial=True)
    except KeyboardInterrupt as stop:
        stop_own_trial(study, objective.current, stop)
        raise
    return stopper.message or reserve.message
