"""Which conditions a genotype's latency is measured under, and what is reported for it.

Precedence, lowest first: the defaults, the conditions a genotype's provenance records (a search's
best.yaml records those it was measured under, so re-measuring it reproduces the search's number), a
search config, then flags. Resolved here, and checked before anything is timed, so that every caller
applies the same order and a bad value fails in one line naming its field.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from predictors.latency.allocator import ALLOCATOR_HOWTO, steady_allocator
from predictors.latency.cache import LatencyCache
from predictors.latency.conditions import (
    CHANNELS_LAST_HOWTO,
    MeasureConfig,
    Measurement,
    config_from_conditions,
    memory_format_of,
)
from predictors.latency.fingerprint import check_backend, fingerprint, resolve_threads
from predictors.latency.measure import DEFAULT, measure_latency
from searchspace.genotype import Genotype
from searchspace.resolve import with_scaling

if TYPE_CHECKING:
    from predictors.latency.model import LatencyModel
    from predictors.latency.table import LatencyTable

CONDITION_FLAGS = ("backend", "device", "threads", "batch", "memory_format")  # conditions a flag may set
REPETITION_FLAGS = ("warmup", "reps")


def measure_config(flags: Mapping[str, Any], search: Mapping[str, Any] | None = None,
                   base: MeasureConfig | None = None) -> MeasureConfig:
    """Defaults < ``base`` (e.g. a genotype's recorded conditions) < ``search`` (a search config's backend
    and threads) < ``flags`` (values of :data:`CONDITION_FLAGS` and :data:`REPETITION_FLAGS`; None: not
    given). NasError naming the field for a bad backend, device or memory format."""
    config = base or MeasureConfig()
    if search is not None:
        config = replace(config, **search)
    config = replace(config, **{name: flags[name] for name in (*CONDITION_FLAGS, *REPETITION_FLAGS)
                                if flags.get(name) is not None})
    check_backend(config.backend, config.device)
    memory_format_of(config)  # checks the memory format
    if config.reps < config.min_reps:
        config = replace(config, min_reps=config.reps)
    return config


@dataclass(frozen=True)
class Request:
    """A genotype at the resolution to measure it at, the config to measure it with (resolution None: the
    genotype carries it) and the conditions its provenance records (None when it records none)."""

    genotype: Genotype
    config: MeasureConfig
    recorded: dict | None = None

    def describe(self) -> str:
        """The conditions in words."""
        c = self.config
        return (f"{c.backend} on {c.device}, {resolve_threads(c.threads)} thread(s), "
                f"{memory_format_of(c)}, batch {c.batch}, resolution {self.genotype.resolution}")

    def other_fingerprint(self) -> str | None:
        """This setting's fingerprint id when the recorded conditions name another one: the recorded
        number came from another device or setting, so expect a different one here."""
        here = fingerprint(self.config.backend, self.config.device, self.config.threads).id()
        recorded = (self.recorded or {}).get("fingerprint_id")
        return here if recorded and recorded != here else None


def request_for(genotype: Genotype, flags: Mapping[str, Any]) -> Request:
    """``genotype`` (already scaled by the flags) and its measurement config: flags first, then its
    ``provenance.latency_conditions``, then the defaults. A recorded resolution rescales the genotype
    unless a ``resolution`` flag was given."""
    recorded = genotype.provenance.get("latency_conditions")
    base = config_from_conditions(recorded, where="provenance.latency_conditions") if recorded else None
    config = measure_config(flags, base=base)
    if flags.get("resolution") is None and config.resolution is not None:
        genotype = with_scaling(genotype, resolution=config.resolution)
    return Request(genotype, replace(config, resolution=None), recorded or None)


def latency_report(genotype: Genotype, config: MeasureConfig, *, model: LatencyModel | None = None,
                   table: LatencyTable | None = None, measure: bool = True,
                   cache: LatencyCache | None | str = DEFAULT) -> dict:
    """One genotype's latency as plain data: the prediction of ``model`` or ``table`` with its interval,
    a measurement when ``measure`` (with the prediction's error), and how to run it as it was timed.

    A table learns from the measurement unless it is noisy (noise would teach its correction noise).
    """
    out: dict = {"genotype": genotype.name, "hash": genotype.hash(), "backend": config.backend,
                 "device": config.device, "batch": config.batch, "resolution": genotype.resolution,
                 "memory_format": memory_format_of(config)}
    predictor = model if model is not None else table
    if predictor is not None:
        out["predictor"] = "lut" if model is None else "model"
        out.update(_prediction(genotype, predictor))
        if table is not None:
            out["conditions"] = table.conditions(genotype.resolution)
    if measure:
        m = measure_latency(genotype, config, cache=cache)
        out.update(_measured(m))
        if predictor is not None:
            out["error_pct"] = 100.0 * (out["predicted_ms"] - m.median_ms) / m.median_ms
        if table is not None:
            out["added_to_correction"] = not m.noisy and table.observe(genotype, m.median_ms, conditions=m.conditions)
    if out["memory_format"] == "channels_last":
        out["how_to_run"] = CHANNELS_LAST_HOWTO
    if config.device == "cpu" and steady_allocator():
        out["allocator_howto"] = ALLOCATOR_HOWTO
    return out


def _prediction(genotype: Genotype, predictor: LatencyModel | LatencyTable) -> dict:
    start = time.perf_counter()
    pred = predictor.predict_interval(genotype)
    out = {"predicted_ms": pred.ms, "low_ms": pred.low_ms, "high_ms": pred.high_ms,
           "predict_seconds": time.perf_counter() - start}
    if getattr(pred, "note", ""):
        out["prediction_note"] = pred.note
    return out


def _measured(m: Measurement) -> dict:
    return {"measured_ms": m.median_ms, "iqr_ms": m.iqr_ms, "reps": m.reps, "noisy": m.noisy, "cached": m.cached,
            "threads": m.threads, "memory_format": m.memory_format, "fingerprint": m.fingerprint,
            "conditions": m.conditions}
