"""Validating latency predictors against networks measured whole on this machine.

Random networks of a space are measured, each predictor is scored on them (accuracy, time per
prediction), and the measurements can be written as the CSV ``nas latency fit`` reads, so the same
networks that judged a predictor can train the next one.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from predictors.latency.conditions import Measurement
from predictors.latency.model import LatencyModel, accuracy_report, time_per_prediction
from predictors.latency.table import LatencyTable
from searchspace.genotype import Genotype
from searchspace.space import Space


def sample_genotypes(space: Space, n: int, seed: int) -> list[Genotype]:
    """``n`` random networks of ``space``, the same ones for the same ``seed``."""
    return [space.random_genotype(seed * 100003 + i) for i in range(n)]


def validation_report(genotypes: Sequence[Genotype], measured: Sequence[Measurement],
                      predictors: Mapping[str, LatencyModel | LatencyTable]) -> dict:
    """How noisy the measurements were, their conditions, and each predictor's accuracy against them
    (:func:`predictors.latency.model.accuracy_report`) and its time per prediction."""
    ms = [m.median_ms for m in measured]
    report: dict = {"n": len(ms), "noisy": sum(m.noisy for m in measured),
                    "median_spread": sorted(m.iqr_ms / m.median_ms for m in measured)[len(ms) // 2],
                    "conditions": measured[0].conditions if measured else None}
    for name, predictor in predictors.items():
        predicted = [predictor.predict(g) for g in genotypes]
        report[name] = {**accuracy_report(ms, predicted),
                        "seconds_per_prediction": time_per_prediction(predictor.predict, genotypes)}
    return report


def write_measurements(path: str | Path, genotypes: Sequence[Genotype], measured: Sequence[Measurement]) -> None:
    """The measurements as a CSV (genotype, latency_ms, iqr_ms, hash, resolution, batch) that
    :func:`predictors.latency.model.read_measurements` reads back."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["genotype", "latency_ms", "iqr_ms", "hash", "resolution", "batch"])
        for g, m in zip(genotypes, measured, strict=True):
            writer.writerow([json.dumps(g.to_dict(), separators=(",", ":")), f"{m.median_ms:.6g}", f"{m.iqr_ms:.4g}",
                             m.genotype_hash, m.resolution, m.batch])
