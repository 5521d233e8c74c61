"""Cost models: the cost of a candidate at the target resolution, built once per run and passed in.

One contract (:class:`CostModel`: ``unit`` and ``cost(genotype)``), three implementations: MACs
counted on the network, latency measured on this machine, latency predicted by a table or a learned
model. The measured model and the table can also time several networks side by side, carefully (the
finalists and the winner's final figure use that; the table then learns from those measurements).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from nas.config import SearchConfig
from searchspace import Genotype, with_scaling


class CostModel(Protocol):
    """What a search needs to know about a candidate's cost."""

    unit: str  # "ms" or "macs"

    def cost(self, genotype: Genotype) -> float:
        """The cost of ``genotype`` at the search's target resolution."""
        ...


@dataclass
class MacsCost:
    """Multiply-accumulates of one forward pass at ``resolution``."""

    resolution: int
    unit: str = "macs"

    def cost(self, genotype: Genotype) -> float:
        from predictors.cost import params_and_macs

        return float(params_and_macs(with_scaling(genotype, resolution=self.resolution))[1])


@dataclass
class MeasuredLatency:
    """Median latency (ms) measured on this machine at batch 1; quick probes are cached per device."""

    backend: str = "torch"
    threads: int | None = None
    resolution: int = 224
    cache: Any = "default"  # the on-disk cache; None: always measure afresh
    unit: str = "ms"

    def cost(self, genotype: Genotype) -> float:
        return float(self.measure([genotype])[0].median_ms)

    def measure(self, genotypes: Sequence[Genotype], careful: bool = False) -> list:
        """:class:`predictors.latency.conditions.Measurement` of each genotype, timed together in interleaved rounds.

        ``careful``: longer rounds, never from the cache (for the finalists and the winner's figure).
        """
        from predictors.latency.conditions import CAREFUL, MeasureConfig
        from predictors.latency.measure import measure_many

        base = CAREFUL if careful else MeasureConfig()
        config = replace(base, backend=self.backend, threads=self.threads, batch=1, resolution=self.resolution)
        targets = [with_scaling(g, resolution=self.resolution) for g in genotypes]
        if careful:
            return measure_many(targets, config, cache=None, group=max(1, len(targets)))
        return measure_many(targets, config, cache=self.cache)


@dataclass
class PredictedLatency:
    """Latency (ms) predicted by a lookup table or a learned model (anything with ``predict(genotype)``)."""

    predictor: Any
    resolution: int = 224
    unit: str = "ms"

    def cost(self, genotype: Genotype) -> float:
        return float(self.predictor.predict(with_scaling(genotype, resolution=self.resolution)))


@dataclass
class TableLatency(PredictedLatency):
    """Latency predicted by this device's lookup table (``predictors.latency.table.LatencyTable``); networks
    timed together (the finalists, the winner's figure) are measured whole under the table's conditions,
    and every such measurement joins the table's correction, which is refitted: the table learns from
    each search that uses it."""

    def measure(self, genotypes: Sequence[Genotype], careful: bool = False) -> list:
        """:class:`predictors.latency.conditions.Measurement` of each genotype, side by side, never from the cache
        (:meth:`MeasuredLatency.measure` under the table's backend and threads), added to the table."""
        table = self.predictor
        measurer = MeasuredLatency(table.config.backend, table.config.threads, self.resolution, cache=None)
        measured = measurer.measure(genotypes, careful)
        if measured:
            targets = [with_scaling(g, resolution=self.resolution) for g in genotypes]
            table.observe_many(targets, [m.median_ms for m in measured], conditions=measured[0].conditions)
        return measured


@dataclass
class RecordedCosts:
    """The cost each network was given during the search, by genotype hash: nothing counted or measured
    (the winner's figures when a search is stopped and must write its outputs at once)."""

    unit: str
    costs: dict[str, float]

    def cost(self, genotype: Genotype) -> float:
        return self.costs[genotype.hash()]


def cost_model_for(config: SearchConfig) -> CostModel:
    """The cost model a search config asks for (a table or model file is loaded here, once)."""
    res = config.latency_resolution
    if config.objective == "macs":
        return MacsCost(res)
    if config.latency == "measure":
        return MeasuredLatency(config.latency_backend, config.latency_threads, res)
    if config.latency == "predictor":
        from predictors.latency.model import LatencyModel
        from searchspace.errors import NasError

        try:
            return PredictedLatency(LatencyModel.load(config.latency_model), res)
        except NasError as err:  # the loader names its argument "model"; in a search config it is this key
            raise NasError(f"latency_{err}" if str(err).startswith("model:") else str(err)) from None
    from predictors.latency.table import LatencyTable

    return TableLatency(LatencyTable.for_this_device(backend=config.latency_backend, threads=config.latency_threads),
                        res)
