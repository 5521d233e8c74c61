"""Choosing a search's winner from its study: best reward, a Pareto member within the target, finalists.

Read by the runner for both backends; the outputs only write what :func:`choose_winner` decided.
The collaborators are the run's own: the reward, and the cost model, whose side-by-side careful
measurement (when it measures latency) re-ranks the finalists and gives the winner's final figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.cost_models import CostModel
from nas.finalists import Finalist, remeasure, top_distinct
from nas.reward import Reward
from nas.scoring import DUPLICATE
from searchspace import Genotype, parse_genotype


@dataclass
class Winner:
    """The chosen trial, its network, and the figures that decided it."""

    trial: FrozenTrial
    genotype: Genotype
    final_cost: float                 # re-measured (or recounted) at the target resolution
    reward: float | None
    fingerprint: dict = field(default_factory=dict)
    finalists: list[Finalist] = field(default_factory=list)


def scored_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Completed trials that trained their own network (repeats of an earlier one left out)."""
    return [t for t in trials if t.state == TrialState.COMPLETE and DUPLICATE not in t.user_attrs]


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Best trial (single objective) or the Pareto front (multi-objective), completed trials only."""
    done = scored_trials(study.get_trials(deepcopy=False))
    if not done:
        return []
    if len(study.directions) > 1:
        return sorted((t for t in study.best_trials if DUPLICATE not in t.user_attrs), key=lambda t: t.values[1])
    return [max(done, key=lambda t: t.value)]


def choose_winner(study: optuna.Study, cost_model: CostModel, reward: Reward, finalists: int = 1) -> Winner | None:
    """The winner of ``study`` (None when no trial completed).

    Single objective: the best reward; with ``finalists`` > 1 and a cost model that measures side by
    side, the best of the top ``finalists`` distinct networks re-ranked on fresh careful measurements.
    Pareto: the most accurate front member within the target (the most accurate of the front if none is).
    """
    best = best_trials(study)
    if not best:
        return None
    measure = getattr(cost_model, "measure", None)
    if len(study.directions) > 1:
        within = [t for t in best if t.user_attrs.get("cost", float("inf")) <= reward.target]
        return _final(max(within or best, key=lambda t: t.user_attrs["accuracy"]), cost_model, reward)
    if measure is None or finalists <= 1:
        return _final(best[0], cost_model, reward)
    done = scored_trials(study.get_trials(deepcopy=False))
    ranked = remeasure(top_distinct(done, finalists), lambda gs: measure(gs, careful=True), reward)
    trial = {t.number: t for t in done}[ranked[0].trial]
    return Winner(trial, parse_genotype(trial.user_attrs["genotype"]), ranked[0].measured_ms, ranked[0].reward,
                  ranked[0].fingerprint, ranked)


def _final(trial: FrozenTrial, cost_model: CostModel, reward: Reward) -> Winner:
    """The winner's cost measured again carefully (or recounted), with the device fingerprint."""
    genotype = parse_genotype(trial.user_attrs["genotype"])
    measure = getattr(cost_model, "measure", None)
    if measure is None:
        return Winner(trial, genotype, cost_model.cost(genotype), trial.user_attrs.get("reward"))
    m = measure([genotype], careful=True)[0]
    return Winner(trial, genotype, float(m.median_ms), trial.user_attrs.get("reward"), dict(m.fingerprint))
