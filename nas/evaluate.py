"""Scoring one candidate: its cost (latency or MACs), proxy training, and the reward.

Shared by the local (Optuna) and the Ray backend so both record the same things.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from nas.config import SearchConfig
from nas.reward import Reward, make_reward
from searchspace import Genotype, with_scaling
from searchspace.errors import NasError


class Rejected(Exception):
    """A candidate whose cost is far over a hard budget: recorded without training."""


@dataclass
class CandidateResult:
    accuracy: float
    cost: float
    reward: float
    epochs: int
    train_seconds: float
    cost_seconds: float
    params: int


def reward_of(config: SearchConfig) -> Reward:
    return make_reward(config.reward, config.target, config.reward_weight)


class CostSource:
    """The cost of a candidate at the target resolution: latency in ms, or MACs."""

    def __init__(self, config: SearchConfig) -> None:
        self.config = config
        self._predictor = None

    def __call__(self, genotype: Genotype) -> float:
        cfg = self.config
        target = with_scaling(genotype, resolution=cfg.latency_resolution)
        if cfg.objective == "macs":
            from predictors.cost import count_macs
            from searchspace import build

            return float(count_macs(build(target), cfg.latency_resolution, target.input["channels"]))
        if cfg.latency == "measure":
            from predictors.latency import measure_latency

            result = measure_latency(target, backend=cfg.latency_backend, threads=cfg.latency_threads,
                                     batch=1, resolution=cfg.latency_resolution)
            return float(result.median_ms)
        if self._predictor is None:
            self._predictor = _load_predictor(cfg)
        return float(self._predictor.predict(target))


def _load_predictor(cfg: SearchConfig):
    if cfg.latency == "predictor":
        from predictors.latency_model import LatencyModel

        return LatencyModel.load(cfg.latency_model)
    from predictors.latency_lut import LatencyTable

    return LatencyTable.for_this_device(backend=cfg.latency_backend, threads=cfg.latency_threads)


def evaluate(genotype: Genotype, config: SearchConfig, cost_source: CostSource,
             report: Callable[[int, float], None] | None = None,
             on_cost: Callable[[float], None] | None = None) -> CandidateResult:
    """Cost first (and reject over-budget candidates under a hard reward), then proxy training.

    ``report(epoch, accuracy)`` is called after each proxy epoch (pruners raise from it);
    ``on_cost(cost)`` is called as soon as the cost is known, before training.
    """
    from predictors.proxy import train_proxy

    reward = reward_of(config)
    start = time.perf_counter()
    cost = cost_source(genotype)
    cost_seconds = time.perf_counter() - start
    if on_cost is not None:
        on_cost(cost)
    limit = reward.hard_limit(config.reject_factor) if config.reward == "mnasnet-hard" else None
    if limit is not None and cost > limit:
        raise Rejected(f"cost {cost:.4g} is over {config.reject_factor:g} x target {config.target:.4g}")
    result = train_proxy(genotype, config.proxy, report=report)
    if not math.isfinite(result.accuracy):
        raise NasError(f"proxy accuracy is {result.accuracy}")
    return CandidateResult(
        accuracy=result.accuracy, cost=cost, reward=reward(result.accuracy, cost), epochs=result.epochs_run,
        train_seconds=result.train_seconds, cost_seconds=cost_seconds, params=result.params)
