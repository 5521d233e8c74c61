"""Scoring one candidate and recording it: the same for the local and the Ray backend.

:func:`score_candidate` turns a genotype into a plain :class:`TrialRecord` (cost first, then proxy
training, then the reward) with the collaborators it is given: a cost model, a reward and a trainer.
:func:`record_attrs` is the one mapping from a record to an Optuna trial's user attributes, and
:func:`reuse_earlier` the one rule for a network the study has already scored (never trained again).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nas.search.cost_models import CostModel
from nas.search.reward import Reward
from nas.strategies.held import AT_CHANCE, holds_network
from searchspace import Genotype

if TYPE_CHECKING:  # optuna is loaded by the loop that passes a study in
    from optuna.study import Study
    from optuna.trial import FrozenTrial

REASON = "reason"
DUPLICATE = "duplicate_of"
RESULT_ATTRS = ("accuracy", "cost", "reward", "epochs", "params")  # what a repeat copies from its original
CHANCE_MARGIN = 0.02  # an accuracy within this of chance (1 / classes) means the candidate learned nothing

Report = Callable[[float, float], None]  # (epochs done, e.g. 0.5 or 1, validation accuracy there)


class Pruned(Exception):
    """Raised by a ``report`` callback to stop a candidate early (a pruner's or scheduler's decision)."""


class Trainer(Protocol):
    """Trains a candidate briefly; calls ``report(epoch, accuracy)`` after each epoch."""

    def __call__(self, genotype: Genotype, report: Report | None = None) -> Any:
        """A result with ``accuracy``, ``epochs_run``, ``train_seconds`` and ``params``."""
        ...


@dataclass
class ProxyTrainer:
    """The default trainer: :func:`predictors.training.proxy.train_proxy` with the search's proxy settings."""

    config: Any  # predictors.training.config.ProxyConfig

    def __call__(self, genotype: Genotype, report: Report | None = None) -> Any:
        from predictors.training.proxy import train_proxy

        return train_proxy(genotype, self.config, report=report)


@dataclass
class FinalistTrainer:
    """A finalist's fresh training: the proxy with another seed, every held-out validation image and
    (optionally) more epochs; returns the validation accuracy."""

    config: Any  # predictors.training.config.ProxyConfig
    epochs: int | None = None

    def __call__(self, genotype: Genotype, seed: int) -> float:
        from dataclasses import replace

        from predictors.training.proxy import train_proxy

        config = replace(self.config, seed=seed, val_subset=None, epochs=self.epochs or self.config.epochs)
        return float(train_proxy(genotype, config).accuracy)


@dataclass
class Scorer:
    """The collaborators that score a candidate, built once per run."""

    cost_model: CostModel
    reward: Reward
    trainer: Trainer
    chance: float = 0.0  # accuracy of guessing: 1 / classes of the proxy data


@dataclass
class TrialRecord:
    """Everything recorded about one candidate, as plain data."""

    genotype: Genotype
    state: str = "COMPLETE"  # COMPLETE | PRUNED | FAIL
    accuracy: float | None = None
    cost: float | None = None
    reward: float | None = None
    epochs: int | None = None
    train_seconds: float | None = None
    cost_seconds: float | None = None
    params: int | None = None
    reason: str | None = None
    duplicate_of: int | None = None
    at_chance: bool = False  # trained fully and learned nothing: a failure, but a result (never retrained)
    check_accuracies: dict[float, float] = field(default_factory=dict)  # {epochs done: accuracy} at each check
    error: BaseException | None = field(default=None, repr=False)  # what ended a FAIL (not recorded)


def score_candidate(genotype: Genotype, scorer: Scorer, report: Report | None = None,
                    on_cost: Callable[[float], None] | None = None) -> TrialRecord:
    """Cost (a hard reward may reject the candidate here), proxy training, reward: one record.

    ``on_cost(cost)`` is called as soon as the cost is known; ``report(epochs_done, accuracy)`` at
    each check of the proxy training (inside epochs too), and raising :class:`Pruned` from it ends the
    candidate as PRUNED. Any other exception ends it as FAIL with its reason: the search goes on.
    """
    record = TrialRecord(genotype)
    try:
        start = time.perf_counter()
        record.cost = scorer.cost_model.cost(genotype)
        record.cost_seconds = time.perf_counter() - start
        if on_cost is not None:
            on_cost(record.cost)
        if scorer.reward.rejects(record.cost):
            return _ended(record, "PRUNED", f"rejected before training: cost {record.cost:.4g} is over "
                          f"{scorer.reward.reject_factor:g} x target {scorer.reward.target:.4g}")

        def on_check(epochs_done: float, accuracy: float) -> None:
            record.check_accuracies[epochs_done] = accuracy
            if report is not None:
                report(epochs_done, accuracy)

        result = scorer.trainer(genotype, on_check)
    except Pruned as err:
        return _ended(record, "PRUNED", str(err))
    except Exception as err:  # recorded as a failed trial; the search goes on
        record.error = err
        return _ended(record, "FAIL", failure_reason(err))
    if not math.isfinite(result.accuracy):
        return _ended(record, "FAIL", f"proxy accuracy is {result.accuracy}")
    record.accuracy, record.epochs = float(result.accuracy), int(result.epochs_run)
    record.train_seconds, record.params = float(result.train_seconds), int(result.params)
    record.reward = scorer.reward(record.accuracy, record.cost)
    return record


def earlier_trial(study: Study, genotype_hash: str, number: int) -> FrozenTrial | None:
    """The first trial before ``number`` that holds the same network (completed, pruned, running in
    another worker, or trained to chance accuracy), if any. Other failures do not count: a failure (out
    of memory, interrupted) may not happen again."""
    for t in study.get_trials(deepcopy=False):
        if holds_network(t) and t.number < number and t.user_attrs.get("hash") == genotype_hash:
            return t
    return None


def score_or_reuse(genotype: Genotype, scorer: Scorer, earlier=None, report: Report | None = None,
                   on_cost: Callable[[float], None] | None = None) -> TrialRecord:
    """The record of ``earlier`` (a FrozenTrial of the same network: never retrained), else a fresh score
    whose accuracy at chance makes it a failure. Both backends score every candidate through this."""
    if earlier is not None:
        return reuse_earlier(TrialRecord(genotype), earlier)
    return below_chance(score_candidate(genotype, scorer, report, on_cost), scorer.chance)


def below_chance(record: TrialRecord, chance: float) -> TrialRecord:
    """A completed candidate no better than guessing is a failure with its reason: never the winner."""
    if record.state == "COMPLETE" and chance > 0 and record.accuracy <= chance + CHANCE_MARGIN:
        record.at_chance = True
        return _ended(record, "FAIL", f"accuracy {record.accuracy:.4f} is at chance ({chance:.4f}): the candidate "
                                      f"did not learn (too few training steps, or a broken setting)")
    return record


def _ended(record: TrialRecord, state: str, reason: str) -> TrialRecord:
    record.state, record.reason = state, reason
    return record


def failure_reason(err: BaseException) -> str:
    """``Type: message (at file:line)`` of the innermost frame, for trials.csv and report.md."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}"[:400] + where


def reuse_earlier(record: TrialRecord, earlier) -> TrialRecord:
    """``record`` filled from an earlier trial (a FrozenTrial) of the same network: nothing is retrained."""
    record.duplicate_of = earlier.number
    if earlier.state.name == "PRUNED":
        return _ended(record, "PRUNED", f"same network as trial {earlier.number}, which was pruned")
    if earlier.state.name == "RUNNING":
        return _ended(record, "PRUNED", f"same network as trial {earlier.number}, which another worker is training")
    if earlier.state.name == "FAIL":  # only a result at chance is reused (see earlier_trial)
        record.at_chance = True
        return _ended(record, "FAIL", f"same network as trial {earlier.number}, which did not learn (at chance)")
    for key in RESULT_ATTRS:
        setattr(record, key, earlier.user_attrs.get(key))
    record.train_seconds, record.cost_seconds = 0.0, 0.0
    return record


def record_attrs(record: TrialRecord, backend: str = "local") -> dict[str, Any]:
    """The Optuna user attributes of a record (the same keys whichever backend scored it)."""
    attrs: dict[str, Any] = {"genotype": record.genotype.to_dict(with_provenance=False),
                             "hash": record.genotype.hash(), "backend": backend}
    for key in ("accuracy", "cost", "reward", "epochs", "train_seconds", "cost_seconds", "params"):
        if getattr(record, key) is not None:
            attrs[key] = getattr(record, key)
    if record.reason:
        attrs[REASON] = record.reason
    if record.duplicate_of is not None:
        attrs[DUPLICATE] = record.duplicate_of
    if record.at_chance:
        attrs[AT_CHANCE] = True
    attrs.update({f"acc_at_{e:g}": a for e, a in record.check_accuracies.items()})
    return attrs


def record_values(record: TrialRecord, multi_objective: bool) -> list[float] | None:
    """The trial's objective values: ``[reward]``, ``[accuracy, cost]`` (Pareto), or None if not complete."""
    if record.state != "COMPLETE":
        return None
    return [record.accuracy, record.cost] if multi_objective else [record.reward]
