"""One search run end to end: prepare the folder, run trials (local or Ray), write the outputs.

Ctrl-C or SIGTERM (:mod:`nas.common.signals`) stops the trials and the finalists: the outputs are written
at once from what the study holds (:func:`stopped`) and the interrupt goes on to the caller. A storage
failure (a full disk, a read-only folder, a lost database server) is raised as one line
(:func:`nas.common.failures.storage_errors`); finished trials are in the study.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

from nas.common.failures import storage_errors
from nas.common.signals import stop_name
from nas.config import SearchConfig
from nas.search.budget_use import budget_use
from nas.search.cluster import NODE_LOCK, measures_latency
from nas.search.cost_models import CostModel, RecordedCosts
from nas.search.finalists import Retrain, finalists_table
from nas.search.local import run_local
from nas.search.outputs import (
    REFERENCE_NETWORKS,
    pareto_front,
    plot_pareto,
    trial_rows,
    write_best,
    write_csv,
    write_report,
)
from nas.search.progress import Progress
from nas.search.retry import RESUME
from nas.search.scoring import Trainer
from nas.search.setup import Run, create_study, prepare_run
from nas.search.starts import score_starts, start_of
from nas.search.winner import Winner, choose_winner, scored_trials
from searchspace import load_genotype
from searchspace.errors import NasError


@dataclass
class RunSummary:
    folder: Path
    best_path: Path | None
    message: str | None
    trials: int
    completed: int
    winner: Winner | None = None    # the chosen network and the figures that decided it (its finalists)


def search(config: SearchConfig, quiet: bool = False, cost_model: CostModel | None = None,
           trainer: Trainer | None = None, retrain: Retrain | None = None) -> RunSummary:
    """Run a search as configured and write ``runs/<name>/``; returns where things are.

    ``cost_model``, ``trainer`` and ``retrain`` (the finalists' trainer) replace the configured ones
    (:func:`nas.search.setup.prepare_run`). Ctrl-C or SIGTERM: the outputs are written and the interrupt
    raised again; a storage failure raises :class:`~searchspace.errors.StorageFailure`.
    """
    run = prepare_run(config, cost_model, trainer, retrain)
    with storage_errors(run.folder, run.storage, then=RESUME):
        return _search(run, create_study(run), quiet)


def _search(run: Run, study, quiet: bool) -> RunSummary:
    """The trials, the winner and the outputs of a prepared run."""
    config = run.config
    unit = config.unit
    progress = Progress(config.trials, config.budget, unit, quiet=quiet)
    if not quiet:
        print(f"nas search: run {run.folder} | space of {run.space.size():.3g} genotypes | strategy "
              f"{config.strategy} | reward {config.reward} | target {config.target:g} {unit} | "
              f"budget {config.budget or '-'} s | trials {config.trials or '-'}", flush=True)
    start = time.monotonic()
    try:
        message = _trials(run, study, progress)
        if not quiet and config.finalists > 1 and study.get_trials(deepcopy=False):
            print(f"nas search: finalists: the best {config.finalists} networks trained again "
                  f"({config.finalist_seeds} seeds each) and measured again side by side", flush=True)
        winner = choose_winner(study, run.scorer.cost_model, run.scorer.reward, config.finalists, run.retrain,
                               run.finalist_seeds, run.settle_seeds, _time_left(config.budget, start))
    except KeyboardInterrupt as stop:
        stopped(run, study, stop, time.monotonic() - start, quiet)
        raise
    best_path = finish(run, study, winner, quiet=quiet)
    trials = study.get_trials(deepcopy=False)
    summary = RunSummary(run.folder, best_path, message, len(trials),
                         len([t for t in trials if t.state.name == "COMPLETE"]), winner)
    if not quiet:
        if message:
            print(f"nas search: {message}", flush=True)
        if winner is not None and winner.settlement is not None:
            print(f"nas search: finalist stage: {winner.settlement.describe()}", flush=True)
        if winner is not None and winner.note:
            print(f"nas search: warning: {winner.note}", flush=True)
        print(f"nas search: {summary.completed} of {summary.trials} trials completed in "
              f"{time.monotonic() - start:.0f}s; outputs in {run.folder}/"
              + (f"; winner {best_path}" if best_path else "; no trial completed, no winner"), flush=True)
    return summary


def _time_left(budget: float | None, start: float):
    """Seconds of the budget left (None without a budget), as a function of now."""
    if budget is None:
        return None
    return lambda: budget - (time.monotonic() - start)


def _trials(run: Run, study, progress: Progress) -> str | None:
    """The starting points, then the search's trials (local or Ray); a message on how the loop ended."""
    spent = score_starts(run, study, progress)
    if run.config.backend == "ray":
        from nas.search.ray_backend import run_ray

        return run_ray(run, study, progress)
    return run_local(run, study, progress, spent)


def stopped(run: Run, study, stop: BaseException, seconds: float, quiet: bool) -> None:
    """After Ctrl-C or SIGTERM: the outputs from what the study holds, at once (the winner on the search's own
    scores and recorded costs; no finalist is trained or measured), and one line saying so."""
    done = scored_trials(study.get_trials(deepcopy=False))
    recorded = RecordedCosts(run.config.unit, {t.user_attrs["hash"]: float(t.user_attrs["cost"]) for t in done})
    winner = choose_winner(study, recorded, run.scorer.reward)
    chosen = "; the winner is chosen on the search's own scores (no finalists)" if winner is not None else ""
    note = f"stopped by {stop_name(stop)} after {seconds:.0f}s with {len(done)} completed trials{chosen}; {RESUME}"
    finish(run, study, winner, quiet=True, stopped=note)
    if not quiet:
        print(f"nas search: {note}; outputs in {run.folder}/", flush=True)


def _reference_costs(cost_model: CostModel) -> dict[str, float]:
    costs = {}
    for name in REFERENCE_NETWORKS:
        try:
            costs[name] = cost_model.cost(load_genotype(f"zoo:{name}"))
        except (NasError, RuntimeError, KeyError):
            continue
    return costs


def finish(run: Run, study, winner: Winner | None, quiet: bool = False, stopped: str | None = None) -> Path | None:
    """Write trials.csv, pareto.csv, pareto.png, best.yaml and report.md (the winner is already chosen).
    ``stopped``: the search was interrupted (said in report.md; nothing is measured for the figure)."""
    from rich.console import Console

    from nas.search.stage_table import print_genotype_table

    cfg = run.config
    rows = trial_rows(study)
    write_csv(run.folder / "trials.csv", rows)
    front = pareto_front(rows)
    write_csv(run.folder / "pareto.csv", front)
    plot_pareto(run.folder / "pareto.png", rows, front, cfg.target, cfg.unit,
                {} if stopped else _reference_costs(run.scorer.cost_model))
    summary = {"name": run.study_name, "config hash": cfg.hash(), "strategy": cfg.strategy, "reward": cfg.reward,
               "target": f"{cfg.target:g} {cfg.unit}", "trials": len(rows)}
    if stopped:
        summary["stopped"] = stopped
    if cfg.backend == "ray" and measures_latency(run):
        summary["latency on the Ray workers"] = NODE_LOCK
    if winner is None:
        write_report(run.folder / "report.md", summary, front, rows, "no completed trial")
        return None
    genotype = winner.genotype
    genotype.name = f"{run.study_name}-trial{winner.trial.number}"
    best_path = write_best(run.folder / "best.yaml", genotype, _provenance(run, winner))
    table = io.StringIO()
    print_genotype_table(genotype, Console(file=table, width=110))
    summary.update({"winner": f"trial {winner.trial.number}",
                    "proxy accuracy (search)": f"{winner.trial.user_attrs['accuracy']:.4f}",
                    "accuracy (finalist)": f"{winner.accuracy:.4f}",
                    f"final {cfg.unit}": f"{winner.final_cost:.4g}",
                    "within target": "yes" if winner.within_target else f"NO: {winner.note}"})
    if cfg.target and winner.within_target:
        summary["budget use"] = budget_use(rows, winner.trial.number, winner.final_cost, cfg.target, cfg.unit,
                                           [f.trial for f in winner.finalists])
    starts = [t for t in study.get_trials(deepcopy=False) if start_of(t)]
    if starts:
        summary["starting points (hand-designed, width-scaled to the target)"] = "; ".join(
            f"trial {t.number} {start_of(t)}: {t.state.name.lower()}" for t in starts)
    if start_of(winner.trial):
        summary["the winner is a starting point"] = (f"{start_of(winner.trial)}: no searched network beat this "
                                                     "hand-designed one at the finalist fidelity")
    if winner.settlement is not None:
        summary["finalist stage"] = winner.settlement.describe()
    if winner.fidelity_tau is not None:
        summary["finalist fidelity (Kendall tau, search vs finalist accuracy)"] = f"{winner.fidelity_tau:.2f}"
    write_report(run.folder / "report.md", summary, front, rows, table.getvalue(),
                 finalists_table(winner.finalists, cfg.unit) if winner.finalists else None)
    if not quiet:
        print(table.getvalue(), end="", flush=True)
    return best_path


def _provenance(run: Run, winner: Winner) -> dict:
    cfg, attrs = run.config, winner.trial.user_attrs
    finalist = winner.finalists[0] if winner.finalists else None
    return {
        "source": "nas search", "run": run.study_name, "trial": winner.trial.number, "config_hash": cfg.hash(),
        "proxy_accuracy": attrs.get("accuracy"), "reward": winner.reward, "search_cost": attrs.get("cost"),
        "finalist_accuracy": winner.accuracy if finalist is not None and finalist.seeds else None,
        "finalist_seeds": finalist.seeds if finalist is not None and finalist.seeds else None,
        "finalist_outcome": winner.settlement.outcome if winner.settlement is not None else None,
        ("latency_ms" if cfg.unit == "ms" else "macs"): winner.final_cost, "target": cfg.target,
        "within_target": winner.within_target, "latency_resolution": cfg.latency_resolution,
        "latency_conditions": winner.conditions or None, "device": winner.fingerprint or None,
        "finalists": len(winner.finalists) or None,
    }
