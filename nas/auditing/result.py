"""What an audit trains (its plan and jobs) and what it found (the result the outputs are written from)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.auditing.candidates import Candidate
from nas.auditing.config import REFERENCE_NAME, AuditConfig
from nas.auditing.stats import ScoreRow, SeedNoise, seed_mean
from predictors.training.config import ProxyConfig


@dataclass
class Job:
    """One training of every candidate: a setting under one seed, or the reference."""

    training: str        # a setting's name, or "reference"
    seed_index: int      # 0, 1, ... (the proxy seed is the setting's seed + this)
    config: ProxyConfig

    @property
    def label(self) -> str:
        if self.training == REFERENCE_NAME and self.seed_index == 0:
            return REFERENCE_NAME
        return f"{self.training} seed {self.seed_index}"


@dataclass
class Plan:
    """What an audit trains, resolved and checked before any work."""

    options: AuditConfig
    settings: dict[str, ProxyConfig]
    reference: ProxyConfig
    jobs: list[Job]


@dataclass
class AuditResult:
    """An audit's outcome: the candidates, one record per candidate x training, the table."""

    folder: Path
    plan: Plan
    candidates: list[Candidate]
    records: list[dict[str, Any]]
    rows: list[ScoreRow] = field(default_factory=list)
    noise: dict[str, SeedNoise | None] = field(default_factory=dict)
    unit: str = "ms"
    target: float = 0.0
    command: str = ""

    @property
    def done(self) -> int:
        return sum(1 for r in self.records if r["state"] != "missing")

    def accuracies(self, training: str, seed_index: int = 0, score: str = "accuracy") -> list[float]:
        """Per candidate, one training's ``score`` (its final ``accuracy``, or ``curve``: the mean over its
        checks); NaN where it failed, has not run or has no such score."""
        out = {r["candidate"]: r.get(score) for r in self.records
               if r["training"] == training and r["seed_index"] == seed_index}
        return [_number(out.get(c.index)) for c in self.candidates]


    def reference_accuracies(self) -> list[float]:
        """Per candidate, the mean of the reference's seeds (NaN where one of them failed or has not run)."""
        per_seed = [self.accuracies(REFERENCE_NAME, i) for i in range(self.plan.options.reference_seeds)]
        return seed_mean(per_seed)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)
