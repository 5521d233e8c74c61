"""Finalists: the best few candidates re-measured side by side, then ranked again.

On a shared machine one latency measurement moves 20-40%, so the trial with the best reward is
often the one whose single measurement was luckiest. With a measured latency the top ``k`` distinct
networks by search reward are measured again, together, in interleaved rounds of about a second
each (the same load hits all alike; ~6 s per network), and ranked by the reward on those numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna

from nas.reward import Reward
from searchspace import Genotype, parse_genotype

SideBySide = Callable[[Sequence[Genotype]], list]
"""Measures genotypes together, carefully; one result (``median_ms``, ``fingerprint``) per genotype."""


@dataclass
class Finalist:
    """One re-measured candidate."""

    trial: int
    accuracy: float
    search_ms: float
    measured_ms: float
    reward: float
    fingerprint: dict


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


def remeasure(trials: list[optuna.trial.FrozenTrial], measure: SideBySide, reward: Reward) -> list[Finalist]:
    """Measure the trials' networks side by side with ``measure``; best re-ranked reward first."""
    results = measure([parse_genotype(t.user_attrs["genotype"]) for t in trials])
    finalists = []
    for t, m in zip(trials, results, strict=True):
        accuracy = float(t.user_attrs["accuracy"])
        finalists.append(Finalist(t.number, accuracy, float(t.user_attrs["cost"]), float(m.median_ms),
                                  reward(accuracy, m.median_ms), dict(m.fingerprint)))
    return sorted(finalists, key=lambda f: f.reward, reverse=True)


def finalists_table(finalists: list[Finalist]) -> list[str]:
    """Markdown rows for report.md."""
    lines = ["| trial | proxy accuracy | search ms | re-measured ms | reward (re-measured) |", "|---|---|---|---|---|"]
    lines += [f"| {f.trial} | {f.accuracy:.4f} | {f.search_ms:.3g} | {f.measured_ms:.3g} | {f.reward:.4f} |"
              for f in finalists]
    return lines
