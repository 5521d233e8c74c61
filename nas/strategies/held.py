"""The one rule for "the study already holds this network": neither proposed nor trained again.

A network is held while its trial is finished, pruned or running, or when it failed at chance accuracy
(it trained fully and learned nothing: a result, not an accident). Other failures (out of memory, an
interrupted run) may not happen again, so their networks may be retried. The search loop
(:func:`nas.search.scoring.earlier_trial`) and the random plan (:class:`nas.strategies.plan.PlanSampler`)
both read it here. optuna is imported on first use: :mod:`nas.search.scoring` reads ``AT_CHANCE``
without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

AT_CHANCE = "at_chance"  # user attribute of a trial that failed at chance accuracy


def holds_network(trial: FrozenTrial) -> bool:
    """Whether ``trial``'s network counts as held: complete, pruned, running, or failed at chance."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return trial.state == TrialState.FAIL and bool(trial.user_attrs.get(AT_CHANCE))


def held_networks(study: Study) -> set[str]:
    """Genotype hashes (user attribute ``hash``) of the networks the study holds."""
    return {t.user_attrs["hash"] for t in study.get_trials(deepcopy=False)
            if "hash" in t.user_attrs and holds_network(t)}
