"""Choosing a search's winner from its study: finalists at higher fidelity, within the target.

Single objective: the best ``finalists`` distinct networks by search reward are scored again
(:mod:`nas.search.finalists`: fresh trainings and a careful cost, side by side); the winner is the best
reward among those whose cost meets the target, after the two leading ones are trained again until the lead
is beyond two standard errors or the budget ends (:mod:`nas.search.settle`; a lead inside the noise is
reported as a tie). When none does, the closest is taken and the
:class:`Winner` says so (with the best network the search saw within the target, if any). Pareto
rewards: the most accurate front member within the target. The collaborators are the run's own: the
reward, the cost model (whose ``measure(..., careful=True)`` times networks side by side when it
measures latency) and a retrainer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.search.cost_models import CostModel
from nas.search.finalists import Finalist, Retrain, fidelity_tau, finalist_pool, score_finalists
from nas.search.reward import Reward
from nas.search.scoring import DUPLICATE
from nas.search.settle import Settlement, settle
from searchspace import Genotype, parse_genotype


@dataclass
class Winner:
    """The chosen trial, its network, and the figures that decided it."""

    trial: FrozenTrial
    genotype: Genotype
    final_cost: float                 # measured again carefully (or recounted) at the target resolution
    reward: float | None
    accuracy: float                   # the finalist accuracy (the search's when not retrained)
    within_target: bool = True
    note: str | None = None           # said on the terminal and in report.md when the target is missed
    fingerprint: dict = field(default_factory=dict)
    conditions: dict = field(default_factory=dict)
    finalists: list[Finalist] = field(default_factory=list)
    fidelity_tau: float | None = None
    settlement: Settlement | None = None  # how the finalist stage ended (separated, tie, ...)


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


def careful_costs(cost_model: CostModel) -> Callable[[list[Genotype]], list]:
    """Costs of several networks at once: measured side by side, carefully, or counted / predicted."""
    measure = getattr(cost_model, "measure", None)
    if measure is not None:
        return lambda genotypes: measure(genotypes, careful=True)
    return lambda genotypes: [cost_model.cost(g) for g in genotypes]


def choose_winner(study: optuna.Study, cost_model: CostModel, reward: Reward, finalists: int = 1,
                  retrain: Retrain | None = None, seeds: Sequence[int] = (), settle_seeds: Sequence[int] = (),
                  time_left: Callable[[], float] | None = None) -> Winner | None:
    """The winner of ``study`` (None when no trial completed); see the module docstring. Each finalist is
    trained with ``seeds``; the two leading ones then with more of ``settle_seeds`` (which starts with
    ``seeds``) while ``time_left()`` allows, until the lead is beyond two standard errors (:mod:`nas.search.settle`)."""
    best = best_trials(study)
    if not best:
        return None
    costs = careful_costs(cost_model)
    if len(study.directions) > 1:
        within = [t for t in best if t.user_attrs.get("cost", float("inf")) <= reward.target]
        trial = max(within or best, key=lambda t: t.user_attrs["accuracy"])
        return _from_finalist(trial, score_finalists([trial], reward, costs)[0], [])
    done = scored_trials(study.get_trials(deepcopy=False))
    k = max(1, finalists)
    pool = finalist_pool(done, k, reward.target)
    ranked = score_finalists(pool, reward, costs, retrain if k > 1 else None, seeds)
    settlement = None
    if k > 1 and retrain is not None and seeds:
        genotypes = {t.number: parse_genotype(t.user_attrs["genotype"]) for t in pool}
        settlement = settle(ranked, genotypes, retrain, reward, list(settle_seeds) or list(seeds), time_left)
    within = [f for f in ranked if f.within_target]
    chosen = within[0] if within else min(ranked, key=lambda f: f.cost)
    trial = {t.number: t for t in done}[chosen.trial]
    winner = _from_finalist(trial, chosen, ranked if k > 1 else [])
    winner.settlement = settlement
    if not within:
        winner.note = _missed_note(chosen, done, reward)
    return winner


def _from_finalist(trial: FrozenTrial, f: Finalist, ranked: list[Finalist]) -> Winner:
    return Winner(trial, parse_genotype(trial.user_attrs["genotype"]), f.cost, f.reward, f.accuracy,
                  f.within_target, None, f.fingerprint, f.conditions, ranked, fidelity_tau(ranked))


def _missed_note(chosen: Finalist, done: list[FrozenTrial], reward: Reward) -> str:
    """What to tell the user when no finalist meets the target."""
    note = (f"no finalist meets the target {reward.target:g} when measured again; the winner (trial {chosen.trial}) "
            f"is the closest at {chosen.cost:.4g}")
    met = [t for t in done if t.user_attrs.get("cost", float("inf")) <= reward.target]
    if met:
        t = max(met, key=lambda t: t.value)
        note += (f"; the best network within the target in the search was trial {t.number} ({t.user_attrs['cost']:.4g}, "
                 f"proxy accuracy {t.user_attrs['accuracy']:.4f})")
    else:
        note += "; the search saw no network within the target"
    return note
