"""``nas audit``: how far can the search trust its score? Proxy settings against a longer reference.

:func:`audit` samples candidates from a search config's space, spread over the cost range the search
visits (:mod:`nas.auditing.candidates`), trains each with every audited proxy setting under several seeds
and once with a reference training several times longer (:mod:`nas.auditing.config`), and ranks every
score against the reference (:mod:`nas.auditing.stats`). It writes ``audit.md``, ``audit.csv`` and
``audit.png`` into the run folder (:mod:`nas.auditing.outputs`). Every finished training is appended to
``trainings.jsonl`` as it ends; a rerun with the same folder trains only what is missing.

The collaborators are passed in (tests hand in fakes): ``trainer_for(proxy_config)`` makes the trainer
of one setting and seed, ``cost_model`` costs the pool, ``free_scores`` gives MACs, params and the
zero-cost scores of a network.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.auditing.candidates import Candidate, FreeScores, ZeroCostScores, pick_candidates, score_free
from nas.auditing.config import (
    REFERENCE,
    REFERENCE_NAME,
    AuditConfig,
    check_audit_config,
    resolve_proxy,
    resolve_settings,
    training_key,
)
from nas.auditing.outputs import write_outputs
from nas.auditing.progress import AuditProgress
from nas.auditing.result import AuditResult, Job, Plan
from nas.auditing.stats import (
    CURVE,
    SPEED,
    ScoreRow,
    SeedNoise,
    baseline_rows,
    reference_rows,
    seed_noise,
    setting_rows,
)
from nas.common.text import cost_text
from nas.config import SearchConfig, load_config
from nas.search.cost_models import CostModel, cost_model_for
from nas.search.scoring import Trainer, failure_reason
from nas.search.setup import dated_name, make_folder, searched_space
from predictors.training.config import ProxyConfig
from searchspace.errors import NasError
from searchspace.jsonl import JsonlStore
from searchspace.settings import apply_settings
from searchspace.textio import load_json, read_text, write_text_atomic

STORE = "trainings.jsonl"
CANDIDATES = "candidates.json"


@dataclass
class HeldDataTrainer:
    """Proxy training with its data set loaded once and kept: an audit cycles through more data sets
    (settings, seeds, the reference) than the loader keeps cached."""

    config: ProxyConfig
    _data: Any = None

    def __call__(self, genotype, report=None):
        from predictors.data.load import load_dataset
        from predictors.training.proxy import train_proxy

        if self._data is None:
            self._data = load_dataset(self.config.dataset_spec())
        return train_proxy(genotype, self.config, report=report, data=self._data)


def make_plan(config: SearchConfig, options: AuditConfig) -> Plan:
    """Settings, seeds and reference as proxy configs, each checked (one-line errors, before any work)."""
    check_audit_config(options)
    settings = resolve_settings(config.proxy, options.settings)
    reference = resolve_proxy(config.proxy, {**REFERENCE, **(options.reference or {})}, REFERENCE_NAME)
    jobs = [Job(name, i, dataclasses.replace(proxy, seed=proxy.seed + i))
            for name, proxy in settings.items() for i in range(options.seeds)]
    references = [Job(REFERENCE_NAME, i, dataclasses.replace(reference, seed=reference.seed + i))
                  for i in range(options.reference_seeds)]
    return Plan(options, settings, reference, jobs + references)


def audit_options(options: AuditConfig | None = None, settings: Mapping | None = None, **keys: Any) -> AuditConfig:
    """An AuditConfig from keyword keys (``candidates=6``), each validated by its declaration."""
    options = dataclasses.replace(options) if options is not None else AuditConfig()
    apply_settings(options, {k: v for k, v in keys.items() if v is not None})
    if settings is not None:
        options.settings = {name: dict(v or {}) for name, v in settings.items()}
    return options


def audit(config: SearchConfig | str | Path | None = None, settings: Mapping[str, Mapping] | None = None,
          options: AuditConfig | None = None, *, folder: str | Path | None = None,
          trainer_for: Callable[[ProxyConfig], Trainer] | None = None, cost_model: CostModel | None = None,
          free_scores: FreeScores | None = None, progress: AuditProgress | None = None, command: str = "",
          **keys: Any) -> AuditResult:
    """Audit a search config's proxy: candidates spread over ``cost_low .. cost_high x T``, each trained
    per setting under ``seeds`` seeds and with the reference under ``reference_seeds``; rank statistics against
    the reference's seed mean.

    ``config``: a SearchConfig or a YAML path (default: the default search). ``settings``: ``{NAME:
    {proxy key: value}}`` (default: the proxy as configured). ``keys``: AuditConfig keys (``candidates=20``,
    ``seeds=2``, ``reference={"epochs": 8}``). Writes ``audit.md``, ``audit.csv``, ``audit.png``,
    ``candidates.json`` and ``trainings.jsonl`` into ``folder`` (default ``RUNS_DIR/NAME``); a rerun with
    the same folder trains only what is missing. Bad settings raise a one-line NasError before any work.
    """
    config = config if isinstance(config, SearchConfig) else load_config(config)
    plan = make_plan(config, audit_options(options, settings, **keys))
    progress = progress or AuditProgress()
    folder = Path(folder) if folder is not None else Path(config.runs_dir) / (config.name or dated_name("audit"))
    make_folder(folder, "out")
    candidates = load_or_pick(config, plan.options, folder, cost_model, free_scores, progress)
    result = AuditResult(folder, plan, candidates, [], unit=config.unit, target=config.target, command=command)
    store = JsonlStore(folder / STORE)
    try:
        train_all(result, store, trainer_for or HeldDataTrainer, progress)
    except KeyboardInterrupt:
        finish(result, store, plot=False)  # the tables of what is done; a rerun continues
        raise
    finish(result, store, plot=True)
    progress.note(f"audit: wrote {folder}/audit.md, audit.csv and audit.png")
    return result


def selection_key(config: SearchConfig, options: AuditConfig) -> dict[str, Any]:
    """What decides the candidates and their free scores (a rerun must agree)."""
    return {"config_hash": config.hash(), "candidates": options.candidates, "cost_low": options.cost_low,
            "cost_high": options.cost_high, "pool": options.pool, "zero_cost_batch": options.zero_cost_batch}


def load_or_pick(config: SearchConfig, options: AuditConfig, folder: Path, cost_model: CostModel | None,
                 free_scores: FreeScores | None, progress: AuditProgress) -> list[Candidate]:
    """The folder's candidates (a rerun), or new ones picked, scored for free and saved."""
    path = folder / CANDIDATES
    key = selection_key(config, options)
    if path.exists():
        saved = load_json(read_text(path, "candidates"), str(path))
        if not isinstance(saved, dict) or saved.get("key") != key:
            raise NasError(f"out: {str(folder)!r} holds an audit of another search config or other candidate "
                           f"keys (--candidates, --pool, --cost-low, --cost-high); use another --name")
        return [Candidate.from_dict(raw) for raw in saved["candidates"]]
    space = searched_space(config)
    cost_model = cost_model or cost_model_for(config)
    t = config.target

    def on_cost(done: int, total: int) -> None:
        if done % 25 == 0 or done == total:
            progress.note(f"audit: costed {done}/{total} sampled networks")

    candidates = pick_candidates(space, cost_model, options.candidates, options.cost_low * t,
                                 options.cost_high * t, options.pool, config.seed, on_cost)
    score_free(candidates, free_scores or ZeroCostScores(config.proxy, config.latency_resolution,
                                                         options.zero_cost_batch))
    write_text_atomic(path, json.dumps({"key": key, "candidates": [c.to_dict() for c in candidates]}, indent=1))
    return candidates


def train_all(result: AuditResult, store: JsonlStore, trainer_for: Callable[[ProxyConfig], Trainer],
              progress: AuditProgress) -> None:
    """Every training the store lacks, candidate by candidate; tables rewritten after each candidate."""
    pending, seen = [], set()
    for candidate in result.candidates:
        for job in result.plan.jobs:  # two settings that resolve to the same proxy share their trainings
            key = training_key(candidate.genotype.hash(), job.config)
            if store.get(key) is None and key not in seen:
                seen.add(key)
                pending.append((candidate, job))
    remaining = Counter(job.training for _, job in pending)
    trainers: dict[str, Trainer] = {}
    for done, (candidate, job) in enumerate(pending, 1):
        if job.label not in trainers:
            trainers[job.label] = trainer_for(job.config)
        trainer = trainers[job.label]
        record = run_training(trainer, candidate, job)
        store.put(record["key"], record)
        remaining[job.training] -= 1
        outcome = f"acc {record['accuracy']:.4f}" if record["accuracy"] is not None else f"failed: {record['reason']}"
        progress.trained(f"{job.label}, candidate {candidate.index + 1}/{len(result.candidates)} "
                         f"({cost_text(candidate.cost, result.unit)})", job.training, record["wall_seconds"],
                         outcome, done, len(pending), dict(remaining))
        if done == len(pending) or pending[done][0] is not candidate:
            finish(result, store, plot=False)


def run_training(trainer: Trainer, candidate: Candidate, job: Job) -> dict[str, Any]:
    """Train one candidate once; a failure is recorded with its reason (Ctrl-C is not a failure)."""
    record: dict[str, Any] = {"key": training_key(candidate.genotype.hash(), job.config),
                              "hash": candidate.genotype.hash(), "accuracy": None, "epochs": None,
                              "train_seconds": None, "reason": None}
    checks: list[list[float]] = []  # [epochs done, accuracy] at each check inside the training
    start = time.perf_counter()
    try:
        listen = job.training != REFERENCE_NAME  # the reference's score is its last accuracy: no checks to pay for
        result = trainer(candidate.genotype, report=(lambda epochs, acc: checks.append([float(epochs), float(acc)]))
                         if listen else None)
        if not math.isfinite(result.accuracy):
            raise NasError(f"accuracy is {result.accuracy}")
        record.update(accuracy=float(result.accuracy), epochs=int(result.epochs_run),
                      train_seconds=float(result.train_seconds), checks=checks,
                      curve=curve_area(checks) if checks else None, speed=training_speed(result))
    except Exception as err:  # one failed training is recorded; the audit goes on
        record["reason"] = failure_reason(err)
    record["wall_seconds"] = time.perf_counter() - start
    return record


def finish(result: AuditResult, store: JsonlStore, plot: bool) -> None:
    """Records and statistics from the store, then the output files."""
    result.records = [_row(c, job, store.get(training_key(c.genotype.hash(), job.config)))
                      for c in result.candidates for job in result.plan.jobs]
    result.rows, result.noise = statistics(result)
    write_outputs(result, plot=plot)


def statistics(result: AuditResult) -> tuple[list[ScoreRow], dict[str, SeedNoise | None]]:
    """The table's rows (each setting's seeds, mean and noise ceiling; the baselines; the reference)."""
    options = result.plan.options
    reference = result.reference_accuracies()
    rows, noise = [], {}
    for name in result.plan.settings:
        per_seed = [result.accuracies(name, i) for i in range(options.seeds)]
        seconds = [_mean_seconds(result, name, i) for i in range(options.seeds)]
        rows += setting_rows(name, per_seed, reference, options.top, seconds)
        noise[name] = seed_noise(per_seed)
        for score, label in (("curve", CURVE), ("speed", SPEED)):  # scores read from the same trainings
            values = [result.accuracies(name, i, score) for i in range(options.seeds)]
            if any(math.isfinite(v) for seed in values for v in seed):
                rows += setting_rows(f"{name} {label}", values, reference, options.top, seconds)
    free_names = list(result.candidates[0].free) if result.candidates else []
    free = {n: [c.free.get(n, math.nan) for c in result.candidates] for n in free_names}
    zero_seconds = sum(c.free_seconds for c in result.candidates) / max(1, len(result.candidates))
    rows += baseline_rows(free, reference, options.top, zero_seconds)
    per_seed = [result.accuracies(REFERENCE_NAME, i) for i in range(options.reference_seeds)]
    rows += reference_rows(per_seed, options.top, [_mean_seconds(result, REFERENCE_NAME, i)
                                                   for i in range(options.reference_seeds)])
    noise[REFERENCE_NAME] = seed_noise(per_seed)
    return rows, noise


def curve_area(checks: list[list[float]]) -> float:
    """The mean accuracy over a training's checks (0.25, 0.5, ... epochs): the area under its learning curve,
    which also rewards a network for learning fast, not only for where it ended."""
    return sum(acc for _, acc in checks) / len(checks)


def training_speed(result: Any) -> float | None:
    """Minus the mean training loss over the last epoch (Ru et al.'s training-speed estimate, NeurIPS 2021:
    a network whose loss falls fast ranks high); None when the trainer kept no history."""
    history = getattr(result, "history", None)
    if not history:
        return None
    loss = float(history[-1].train_loss)
    return -loss if math.isfinite(loss) else None


def _mean_seconds(result: AuditResult, training: str, seed_index: int) -> float | None:
    values = [r["train_seconds"] for r in result.records if r["training"] == training
              and r["seed_index"] == seed_index and r["train_seconds"] is not None]
    return sum(values) / len(values) if values else None


def _row(candidate: Candidate, job: Job, stored: dict[str, Any] | None) -> dict[str, Any]:
    """One CSV row: a candidate x a training (state missing while it has not run)."""
    stored = stored or {}
    state = "missing" if not stored else ("failed" if stored.get("reason") else "ok")
    return {"candidate": candidate.index, "hash": candidate.genotype.hash(), "cost": candidate.cost,
            **candidate.free, "training": job.training, "seed_index": job.seed_index, "seed": job.config.seed,
            "state": state, "accuracy": stored.get("accuracy"), "curve": stored.get("curve"),
            "speed": stored.get("speed"), "epochs": stored.get("epochs"),
            "train_seconds": stored.get("train_seconds"), "wall_seconds": stored.get("wall_seconds"),
            "reason": stored.get("reason")}


