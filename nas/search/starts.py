"""The search's first candidates: hand-designed networks width-scaled to the budget T.

A user who asks for the best network within 20 ms would otherwise take MobileNetV3 or EfficientNet-B0
scaled to 20 ms. The search scores those first, like any candidate (one trial each, its cost measured
and its proxy trained), so they reach the finalist stage when they rank there and a search can return a
known design when it found nothing better; ``report.md`` then says so. They are not points of the
searched space (their blocks and stems differ), so their trials have no params: the strategies learn
from the space's own trials, and the winner is rebuilt from the genotype each trial records.
"""

from __future__ import annotations

import dataclasses
import time

import optuna

from nas.search.progress import Progress
from nas.search.scoring import earlier_trial, record_attrs, record_values, score_or_reuse
from nas.search.setup import Run
from searchspace import Genotype, load_genotype, parse_genotype, with_scaling

START_ATTR = "start"  # a starting point's trial records what it is: "mobilenet_v3_large x0.844"
WIDTH_RANGE = (0.25, 2.0)


def scaled_to_target(genotype: Genotype, cost, target: float, steps: int = 7) -> tuple[Genotype, float]:
    """The widest variant of ``genotype`` (width multiplier bisected in :data:`WIDTH_RANGE`) whose cost is
    within ``target``, and that cost; the narrowest one when even it is over."""
    low, high = WIDTH_RANGE
    best: tuple[Genotype, float] | None = None
    for _ in range(steps):
        mid = round((low + high) / 2, 3)
        variant = with_scaling(genotype, width=mid)
        value = cost(variant)
        if value <= target:
            low, best = mid, (variant, value)
        else:
            high = mid
    if best is None:
        variant = with_scaling(genotype, width=WIDTH_RANGE[0])
        best = (variant, cost(variant))
    return best


def zoo_for_data(name: str, num_classes: int) -> Genotype:
    """``zoo:NAME`` with a classifier for the search's data."""
    g = load_genotype(f"zoo:{name}")
    return parse_genotype(dataclasses.replace(g, head={**g.head, "num_classes": num_classes}).to_dict())


def score_starts(run: Run, study: optuna.Study, progress: Progress) -> float:
    """Score every configured starting point the study does not hold yet; returns the seconds spent."""
    started = time.monotonic()
    held = {t.user_attrs["genotype"].get("name") for t in study.get_trials(deepcopy=False) if start_of(t)}
    for name in run.config.start_names():
        if name in held:
            continue
        base = zoo_for_data(name, run.space.config.head["num_classes"])
        genotype, _ = scaled_to_target(base, run.scorer.cost_model.cost, run.config.target)
        label = f"{name} x{genotype.scaling['width']:g}"
        progress.candidate(len(study.get_trials(deepcopy=False)), genotype)
        _add(study, run, genotype, label)
        progress.finished(study, study.get_trials(deepcopy=False)[-1])
    return time.monotonic() - started


def _add(study: optuna.Study, run: Run, genotype: Genotype, label: str) -> None:
    """Score one starting point and add it to the study as a finished trial without params."""
    earlier = earlier_trial(study, genotype.hash(), len(study.get_trials(deepcopy=False)))
    record = score_or_reuse(genotype, run.scorer, earlier)
    values = record_values(record, run.scorer.reward.multi_objective)
    attrs = {**record_attrs(record), START_ATTR: label}
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState[record.state], values=values,
                                              params={}, distributions={}, user_attrs=attrs))


def start_of(trial) -> str | None:
    """What a trial's network is when it is a starting point (else None)."""
    return trial.user_attrs.get(START_ATTR)
