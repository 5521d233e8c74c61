"""Latency-aware rewards (REFERENCE.md section 3).

- ``mnasnet``: ``ACC * (LAT / T) ** w`` with w = -0.07 on both sides (soft constraint).
- ``mnasnet-hard`` (the default): w = 0 when LAT <= T, w = -1 beyond (hard constraint: the most
  accurate network within T, no bonus for being faster; Vertex AI NAS's default form).
- ``tunas-abs``: ``ACC + beta * |LAT / T - 1|`` with beta = -0.10.
- ``pareto``: no scalar reward; accuracy and latency are two objectives (NSGA-II).

``cost`` is whatever the target is measured in: milliseconds for latency targets, MACs for an
EfficientNet-style search (``ACC * (MACS / T) ** w``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from searchspace.errors import NasError

REWARDS = ("mnasnet", "mnasnet-hard", "tunas-abs", "pareto")


@dataclass(frozen=True)
class Reward:
    """A reward function with its constants."""

    name: str = "mnasnet"
    target: float = 20.0
    alpha: float = -0.07
    beta: float = -0.07
    reject_factor: float = 0.0  # mnasnet-hard: candidates over FACTOR * T are not trained (0: never)

    def __post_init__(self) -> None:
        if self.name not in REWARDS:
            raise NasError(f"reward: {self.name!r} is not one of {', '.join(REWARDS)}")
        if not self.target > 0:
            raise NasError(f"target: {self.target} must be > 0")

    @property
    def cost_limit(self) -> float | None:
        """The budget a hard reward holds candidates to (T), for strategies that learn where it is."""
        return self.target if self.name == "mnasnet-hard" else None

    @property
    def multi_objective(self) -> bool:
        return self.name == "pareto"

    def __call__(self, accuracy: float, cost: float) -> float:
        """Scalar reward of a candidate (for ``pareto``: the accuracy itself)."""
        ratio = cost / self.target
        if self.name == "mnasnet":
            w = self.alpha if cost <= self.target else self.beta
            return accuracy * ratio**w
        if self.name == "mnasnet-hard":
            return accuracy * (1.0 if cost <= self.target else ratio**-1.0)
        if self.name == "tunas-abs":
            return accuracy + self.beta * abs(ratio - 1.0)
        return accuracy

    def rejects(self, cost: float) -> bool:
        """True when a hard reward would not train a candidate of this cost (over ``reject_factor`` x T)."""
        limit = self.reject_factor
        return self.name == "mnasnet-hard" and limit > 0 and not math.isinf(limit) and cost > self.target * limit


def make_reward(name: str, target: float, weight: float | None = None, reject_factor: float = 0.0) -> Reward:
    """A reward with the published constants; ``weight`` overrides w (mnasnet) or beta (tunas-abs)."""
    if name == "mnasnet":
        w = -0.07 if weight is None else weight
        return Reward(name, target, w, w)
    if name == "mnasnet-hard":
        return Reward(name, target, 0.0, -1.0, reject_factor)
    if name == "tunas-abs":
        return Reward(name, target, 0.0, -0.10 if weight is None else weight)
    return Reward(name, target)


def reward_for(config) -> Reward:
    """The reward a search config (:class:`nas.config.SearchConfig`) asks for."""
    return make_reward(config.reward, config.target, config.reward_weight, config.reject_factor)
