"""The networks an audit trains: drawn from the search's space, spread evenly over the cost range.

:func:`pick_candidates` draws a seeded pool of distinct random networks, costs each with the search's
cost model, and keeps ``n`` whose costs lie closest to ``n`` evenly spaced points between ``low`` and
``high`` (``0.5 T`` .. ``1.5 T`` by default). :class:`FreeScores` gives each candidate's free baselines:
MACs and parameters at the search's resolution, and the zero-cost scores of the proxy network
(:mod:`predictors.zero_cost.scores`) on one batch of the proxy data.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from predictors.training.config import ProxyConfig
from searchspace import Genotype, parse_genotype
from searchspace.errors import NasError
from searchspace.space import Space

ZERO_COST = ("synflow", "naswot", "grad_norm", "snip", "jacob_cov")  # scored on the proxy network
SIZE = ("macs", "params")                                              # counted on the searched network


@dataclass
class Candidate:
    """One audited network with its cost and free baselines."""

    index: int
    genotype: Genotype
    cost: float
    free: dict[str, float] = field(default_factory=dict)  # SIZE and ZERO_COST scores
    free_seconds: float = 0.0                              # time the zero-cost scores took

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "hash": self.genotype.hash(), "cost": self.cost, "free": self.free,
                "free_seconds": self.free_seconds, "genotype": self.genotype.to_dict(with_provenance=False)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Candidate:
        return cls(int(raw["index"]), parse_genotype(raw["genotype"]), float(raw["cost"]),
                   {k: float(v) for k, v in raw["free"].items()}, float(raw["free_seconds"]))


class Costs(Protocol):
    """The search's cost model (:mod:`nas.search.cost_models`)."""

    unit: str

    def cost(self, genotype: Genotype) -> float: ...


def draw_pool(space: Space, size: int, seed: int) -> list[Genotype]:
    """``size`` distinct random networks of ``space`` (seeded); fewer if the space holds fewer."""
    rng = random.Random(seed)
    pool: dict[str, Genotype] = {}
    for _ in range(size * 20):
        if len(pool) == size:
            break
        genotype = space.random_genotype(rng)
        pool.setdefault(genotype.hash(), genotype)
    return list(pool.values())


def spread_pick(costs: Sequence[float], n: int, low: float, high: float) -> list[int]:
    """Indices of ``n`` costs within [low, high], the nearest unused one to each of ``n`` evenly spaced
    points from low to high (ties: the earlier index), in the order of the points."""
    inside = [i for i, c in enumerate(costs) if low <= c <= high]
    if len(inside) < n:
        raise NasError(f"candidates: only {len(inside)} of {len(costs)} sampled networks cost between "
                       f"{low:.4g} and {high:.4g}, fewer than the {n} asked for; raise --pool, widen "
                       f"--cost-low/--cost-high or lower --candidates")
    points = [low + (high - low) * k / (n - 1) for k in range(n)] if n > 1 else [(low + high) / 2]
    picked: list[int] = []
    for point in points:
        best = min((i for i in inside if i not in picked), key=lambda i: (abs(costs[i] - point), i))
        picked.append(best)
    return picked


def pick_candidates(space: Space, cost_model: Costs, n: int, low: float, high: float, pool: int, seed: int,
                    on_cost: Callable[[int, int], None] | None = None) -> list[Candidate]:
    """``n`` candidates spread over [low, high] of the cost model's unit, cheapest first."""
    genotypes = draw_pool(space, pool, seed)
    costs = []
    for i, genotype in enumerate(genotypes):
        costs.append(float(cost_model.cost(genotype)))
        if on_cost is not None:
            on_cost(i + 1, len(genotypes))
    chosen = sorted(spread_pick(costs, n, low, high), key=lambda i: (costs[i], i))
    return [Candidate(k, genotypes[i], costs[i]) for k, i in enumerate(chosen)]


class FreeScores(Protocol):
    """Scores of a candidate that need no training: ``{name: value}`` (higher = predicted better,
    except that MACs and params are just the network's size)."""

    def __call__(self, genotype: Genotype) -> dict[str, float]: ...


@dataclass
class ZeroCostScores:
    """MACs and params of the network at ``resolution``; zero-cost scores of its proxy network
    (proxy width and resolution, initialised from the proxy seed) on one batch of the proxy data."""

    proxy: ProxyConfig
    resolution: int
    batch_size: int = 64
    _batch: Any = None

    def __call__(self, genotype: Genotype) -> dict[str, float]:
        import torch

        from predictors.cost import params_and_macs
        from predictors.training.proxy import check_channels, proxy_genotype
        from predictors.zero_cost.scores import compute_proxies
        from searchspace import build, with_scaling

        params, macs = params_and_macs(with_scaling(genotype, resolution=self.resolution))
        scores = {"macs": float(macs), "params": float(params)}
        small = proxy_genotype(genotype, self.proxy)
        x, y = self.batch()
        if x.shape[1] != small.input["channels"]:
            x = x.repeat(1, check_channels(x.shape[1], small, "zero-cost"), 1, 1)
        torch.manual_seed(self.proxy.seed)
        scores.update(compute_proxies(build(small), (x, y), ZERO_COST))
        return scores

    def batch(self):
        """One batch of proxy training images, resized and standardised as the proxy trains on them."""
        if self._batch is None:
            import torch

            from predictors.data.load import load_dataset
            from predictors.training.batches import channel_stats, prepare_tensors

            data = load_dataset(self.proxy.dataset_spec())
            images, labels = prepare_tensors(data.train, self.proxy.resolution, torch.device("cpu"))
            pick = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.proxy.seed))
            pick = pick[:self.batch_size]
            mean, std = channel_stats(images)
            self._batch = ((images[pick].float() - mean) / std, labels[pick])
        return self._batch


def score_free(candidates: list[Candidate], scores: FreeScores) -> None:
    """Fill each candidate's free baselines (and the seconds they took), in place."""
    for candidate in candidates:
        start = time.perf_counter()
        candidate.free = {k: float(v) for k, v in scores(candidate.genotype).items()}
        candidate.free_seconds = time.perf_counter() - start
