"""Finalists that settle it: the two leading networks are trained again until the winner's lead is real.

A finalist's score is the mean of a few fresh trainings, and two finalists often differ by less than
their seeds do. After the finalists' first trainings, the leader and the runner-up (by reward, among the
finalists within the target) get one more fresh training each, the one with fewer first, until the
leader's reward lead is beyond two standard errors of the difference (``separated``), both reach the
most trainings allowed, or the search's budget has no room for another (a ``tie``: every finalist within
two standard errors of the leader is listed). The standard error of a reward comes from its per-seed
rewards (the reward of each training's accuracy at the finalist's cost), so it is in the reward's units.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nas.search.finalists import Finalist, Retrain
from nas.search.reward import Reward
from searchspace import Genotype

SEPARATION = 2.0  # standard errors of the difference a lead must exceed


@dataclass
class Settlement:
    """How the finalist stage ended: ``separated``, ``tie``, ``alone`` (fewer than two finalists within the
    target to compare) or ``unscored`` (no fresh trainings)."""

    outcome: str
    lead: float = float("nan")            # the leader's reward minus the runner-up's
    se: float = float("nan")              # the standard error of that lead
    tied: list[int] = field(default_factory=list)  # trials within 2 SE of the leader (the leader first)
    extra: int = 0                        # fresh trainings beyond the first ones
    why: str = ""                         # what ended a tie: the most trainings, or the budget

    def describe(self) -> str:
        """One line for report.md and the terminal."""
        if self.outcome == "separated":
            return (f"separated: the winner leads the runner-up by {self.lead:.4f} reward, beyond 2 standard "
                    f"errors ({SEPARATION * self.se:.4f}), after {self.extra} extra trainings")
        if self.outcome == "tie":
            return (f"tie: the lead of {self.lead:.4f} reward is within 2 standard errors ({SEPARATION * self.se:.4f}) "
                    f"after {self.extra} extra trainings ({self.why}); tied trials: "
                    + ", ".join(map(str, self.tied)) + " (the first is taken)")
        if self.outcome == "alone":
            return "one finalist within the target: nothing to separate"
        return "no fresh trainings: the finalists are ranked on the search's scores"


def seed_rewards(f: Finalist, reward: Reward) -> list[float]:
    """The reward of each fresh training's accuracy at the finalist's cost."""
    return [reward(a, f.cost) for a in f.accuracies]


def reward_se(f: Finalist, reward: Reward) -> float:
    """Standard error of a finalist's mean reward (infinite with fewer than two trainings)."""
    values = seed_rewards(f, reward)
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.inf


def lead(a: Finalist, b: Finalist, reward: Reward) -> tuple[float, float]:
    """(a's reward minus b's, the standard error of that difference)."""
    return a.reward - b.reward, math.hypot(reward_se(a, reward), reward_se(b, reward))


def add_training(f: Finalist, genotype: Genotype, retrain: Retrain, seed: int, reward: Reward) -> float:
    """Train ``f``'s network once more with ``seed`` and update its figures; returns the seconds it took."""
    start = time.monotonic()
    f.accuracies.append(retrain(genotype, seed))
    seconds = time.monotonic() - start
    f.train_seconds += seconds
    f.seeds = len(f.accuracies)
    f.accuracy = statistics.fmean(f.accuracies)
    f.accuracy_std = statistics.stdev(f.accuracies) if f.seeds > 1 else 0.0
    f.reward = reward(f.accuracy, f.cost)
    return seconds


def settle(ranked: list[Finalist], genotypes: dict[int, Genotype], retrain: Retrain, reward: Reward,
           seeds: Sequence[int], time_left: Callable[[], float] | None = None) -> Settlement:
    """Train the leader and runner-up again (seeds in order, at most ``len(seeds)`` each) until the lead is
    beyond 2 SE, the seeds run out, or ``time_left()`` seconds cannot hold another training. ``ranked`` is
    updated and re-sorted by reward in place."""
    extra = 0
    while True:
        ranked.sort(key=lambda f: f.reward, reverse=True)
        within = [f for f in ranked if f.within_target and f.seeds]
        if not any(f.seeds for f in ranked):
            return Settlement("unscored")
        if len(within) < 2:
            return Settlement("alone", extra=extra)
        leader, runner = within[:2]
        gap, se = lead(leader, runner, reward)
        if gap > SEPARATION * se:
            return Settlement("separated", gap, se, [leader.trial], extra)
        contenders = [f for f in (leader, runner) if f.seeds < len(seeds)]
        why = "the most trainings reached" if not contenders else _no_room(ranked, time_left)
        if why:
            tied = [f.trial for f in within if f is leader or _within_noise(leader, f, reward)]
            return Settlement("tie", gap, se, tied, extra, why)
        f = min(contenders, key=lambda c: c.seeds)
        add_training(f, genotypes[f.trial], retrain, seeds[f.seeds], reward)
        extra += 1


def _within_noise(leader: Finalist, other: Finalist, reward: Reward) -> bool:
    gap, se = lead(leader, other, reward)
    return gap <= SEPARATION * se


def _no_room(ranked: list[Finalist], time_left: Callable[[], float] | None) -> str:
    """'the budget ended' when the time left cannot hold one more training (the mean so far), else ''."""
    if time_left is None:
        return ""
    trained = [f for f in ranked if f.seeds]
    per_training = sum(f.train_seconds for f in trained) / max(1, sum(f.seeds for f in trained))
    return "the budget ended" if time_left() < per_training else ""
