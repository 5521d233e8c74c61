"""A trial stopped from outside runs again: one interrupted by Ctrl-C or SIGTERM, or one whose worker died.

Such a trial stays in the study as failed, with its reason, and its network is queued as a new trial
with the same params, which the next worker (or ``--resume``) runs first. The queued trial carries
Optuna's retry attributes (those of :class:`optuna.storages.RetryHeartbeatStaleTrialCallback`:
``failed_trial``, the first trial of the chain, and ``retry_history``), so Optuna's own helpers read
it. A failed trial that was queued again does not count toward ``trials``: a resumed ``--trials N``
ends with N finished networks (:func:`counted`, :class:`StopAtTrials`). A dead worker's trial is queued
at most :data:`STALE_RETRIES` times (a network that kills its worker is not retried for ever).
"""

from __future__ import annotations

from collections.abc import Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

FAILED_TRIAL, HISTORY = "failed_trial", "retry_history"  # Optuna's names
RESUME = "continue with --resume (finished trials are kept)"  # what a stopped search tells the user to do
STALE_RETRIES = 2


def queue_again(study: optuna.Study, trial: FrozenTrial, max_retry: int | None = None) -> bool:
    """Queue ``trial``'s network as a new trial (same params); False when it was retried ``max_retry`` times."""
    history = [*trial.system_attrs.get(HISTORY, []), trial.number]
    if max_retry is not None and len(history) > max_retry:
        return False
    attrs = {FAILED_TRIAL: trial.system_attrs.get(FAILED_TRIAL, trial.number), HISTORY: history}
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=trial.params,
                                              distributions=trial.distributions, system_attrs=attrs))
    return True


def retry_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """The storage's callback for a trial whose worker stopped sending heartbeats: run it again."""
    queue_again(study, trial, STALE_RETRIES)


def queued_again(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of the failed trials that a later trial runs again."""
    return {t.system_attrs[HISTORY][-1] for t in trials if t.system_attrs.get(HISTORY)}


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The finished trials that count toward ``trials``: complete, pruned or failed, less those queued again."""
    again = queued_again(trials)
    return [t for t in trials if t.state.is_finished() and t.number not in again]


class StopAtTrials:
    """Stop the study once it holds ``n`` counted trials (all workers together)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if len(counted(study.get_trials(deepcopy=False))) >= self.n:
            study.stop()
