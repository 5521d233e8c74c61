"""Finalists: the best few networks of a search, scored again at higher fidelity, side by side.

A search score is one short proxy training (one seed, a small validation subset) and one quick
latency measurement on a shared machine: the top of the ranking is partly luck. The top ``k``
distinct networks by search reward are therefore trained again with fresh seeds on every held-out
validation image (their mean is the finalist accuracy), and their cost is measured again together
in interleaved rounds (the same load hits all alike), or recounted for MACs and predicted latency.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna

from nas.search.reward import Reward
from searchspace import Genotype, parse_genotype

SideBySide = Callable[[Sequence[Genotype]], list]
"""Measures genotypes together, carefully; one result (``median_ms``, ``fingerprint``) per genotype."""
Retrain = Callable[[Genotype, int], float]
"""A fresh proxy training of a genotype with a seed: its validation accuracy."""


@dataclass
class Finalist:
    """One finalist: its search figures and its figures at finalist fidelity."""

    trial: int
    search_accuracy: float
    search_cost: float
    accuracy: float                 # mean of the fresh trainings (the search's accuracy when none)
    cost: float                     # measured again side by side (or recounted)
    reward: float
    accuracy_std: float = 0.0
    seeds: int = 0                  # fresh trainings behind ``accuracy``
    within_target: bool = True
    fingerprint: dict = field(default_factory=dict)
    conditions: dict = field(default_factory=dict)
    accuracies: list[float] = field(default_factory=list)  # each fresh training's accuracy, in seed order
    train_seconds: float = 0.0      # the fresh trainings' wall time, together


def top_distinct(trials: list[optuna.trial.FrozenTrial], k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``k`` best trials by search reward, one per network (genotype hash)."""
    seen: set[str] = set()
    picked = []
    for t in sorted(trials, key=lambda t: t.value, reverse=True):
        key = t.user_attrs.get("hash")
        if key in seen:
            continue
        seen.add(key)
        picked.append(t)
        if len(picked) == k:
            break
    return picked


def finalist_pool(trials: list[optuna.trial.FrozenTrial], k: int, target: float) -> list[optuna.trial.FrozenTrial]:
    """:func:`top_distinct`, with the best trial measured within ``target`` in the last place when none of
    the top ``k`` was (trials just over T may be re-measured within it; if none is, the winner is still a
    network the search saw within T)."""
    picked = top_distinct(trials, k)
    if any(t.user_attrs.get("cost", float("inf")) <= target for t in picked):
        return picked
    within = top_distinct([t for t in trials if t.user_attrs.get("cost", float("inf")) <= target], 1)
    return picked[: k - 1] + within if within else picked


def retrained_accuracies(genotype: Genotype, retrain: Retrain | None, seeds: Sequence[int]) -> tuple[list[float], float]:
    """The accuracy of a fresh training per seed, and their wall time together (none without a retrainer)."""
    if retrain is None or not seeds:
        return [], 0.0
    start = time.monotonic()
    values = [retrain(genotype, s) for s in seeds]
    return values, time.monotonic() - start


def score_finalists(trials: list[optuna.trial.FrozenTrial], reward: Reward, costs: Callable[[list[Genotype]], list],
                    retrain: Retrain | None = None, seeds: Sequence[int] = ()) -> list[Finalist]:
    """The trials' networks at finalist fidelity, best reward first.

    ``costs(genotypes)`` gives one result per genotype (``median_ms`` or a plain number, and optionally
    ``fingerprint`` / ``conditions``), all at once so that measurements are side by side.
    """
    genotypes = [parse_genotype(t.user_attrs["genotype"]) for t in trials]
    results = costs(genotypes)
    finalists = []
    for t, g, r in zip(trials, genotypes, results, strict=True):
        values, seconds = retrained_accuracies(g, retrain, seeds)
        n = len(values)
        accuracy = statistics.fmean(values) if n else float(t.user_attrs["accuracy"])
        std = statistics.stdev(values) if n > 1 else 0.0
        cost = float(getattr(r, "median_ms", r))
        finalists.append(Finalist(t.number, float(t.user_attrs["accuracy"]), float(t.user_attrs["cost"]), accuracy,
                                  cost, reward(accuracy, cost), std, n, cost <= reward.target,
                                  dict(getattr(r, "fingerprint", {}) or {}), dict(getattr(r, "conditions", {}) or {}),
                                  values, seconds))
    return sorted(finalists, key=lambda f: f.reward, reverse=True)


def fidelity_tau(finalists: list[Finalist]) -> float | None:
    """Kendall tau of the search accuracy vs the finalist accuracy (None with fewer than 3 retrained)."""
    retrained = [f for f in finalists if f.seeds]
    if len(retrained) < 3:
        return None
    from scipy.stats import kendalltau

    tau = kendalltau([f.search_accuracy for f in retrained], [f.accuracy for f in retrained]).statistic
    return None if tau != tau else float(tau)


def finalists_table(finalists: list[Finalist], unit: str) -> list[str]:
    """Markdown rows for report.md (the winner is marked)."""
    lines = [f"| trial | search accuracy | finalist accuracy (mean +- std, seeds) | search {unit} | "
             f"re-measured {unit} | within target | reward |", "|---|---|---|---|---|---|---|"]
    for f in finalists:
        acc = f"{f.accuracy:.4f} +- {f.accuracy_std:.4f} ({f.seeds})" if f.seeds else "- (not retrained)"
        lines.append(f"| {f.trial} | {f.search_accuracy:.4f} | {acc} | {f.search_cost:.4g} | {f.cost:.4g} | "
                     f"{'yes' if f.within_target else 'no'} | {f.reward:.4f} |")
    return lines
