"""One search run end to end: prepare the folder, run trials (local or Ray), write the outputs."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

from nas.config import SearchConfig
from nas.finalists import finalists_table, remeasure, top_distinct
from nas.outputs import (
    REFERENCE_NETWORKS,
    pareto_front,
    plot_pareto,
    trial_rows,
    write_best,
    write_csv,
    write_report,
)
from nas.progress import Progress
from nas.search import best_trials, create_study, genotype_of, prepare_run, run_local, scored_trials
from searchspace import load_genotype, with_scaling
from searchspace.errors import NasError


@dataclass
class RunSummary:
    folder: Path
    best_path: Path | None
    message: str | None
    trials: int
    completed: int


def search(config: SearchConfig, quiet: bool = False) -> RunSummary:
    """Run a search as configured and write ``runs/<name>/``; returns where things are."""
    run = prepare_run(config)
    study = create_study(run)
    unit = "ms" if config.objective == "latency" else "macs"
    progress = Progress(config.trials, config.budget, unit, quiet=quiet)
    if not quiet:
        print(f"nas search: run {run.folder} | space of {run.space.size():.3g} genotypes | strategy "
              f"{config.strategy} | reward {config.reward} | target {config.target:g} {unit} | "
              f"budget {config.budget or '-'} s | trials {config.trials or '-'}", flush=True)
    start = time.monotonic()
    if config.backend == "ray":
        from nas.ray_backend import run_ray

        message = run_ray(run, study, progress)
    else:
        message = run_local(run, study, progress)
    best_path = finish(run, study, quiet=quiet)
    trials = study.get_trials(deepcopy=False)
    summary = RunSummary(run.folder, best_path, message, len(trials),
                         len([t for t in trials if t.state.name == "COMPLETE"]))
    if not quiet:
        if message:
            print(f"nas search: {message}", flush=True)
        print(f"nas search: {summary.completed} of {summary.trials} trials completed in "
              f"{time.monotonic() - start:.0f}s; outputs in {run.folder}/"
              + (f"; winner {best_path}" if best_path else "; no trial completed, no winner"), flush=True)
    return summary


def _final_cost(run, genotype) -> tuple[float, dict]:
    """Re-measure (or recount) the winner's cost at the target resolution, with the device fingerprint."""
    cfg = run.config
    if cfg.objective == "macs":
        from nas.evaluate import CostSource

        return CostSource(cfg)(genotype), {}
    from predictors.latency import measure_latency

    result = measure_latency(with_scaling(genotype, resolution=cfg.latency_resolution),
                             backend=cfg.latency_backend, threads=cfg.latency_threads, batch=1,
                             resolution=cfg.latency_resolution, cache=None)
    return float(result.median_ms), dict(result.fingerprint)


def _reference_costs(run) -> dict[str, float]:
    from nas.evaluate import CostSource

    source = CostSource(run.config)
    costs = {}
    for name in REFERENCE_NETWORKS:
        try:
            costs[name] = source(load_genotype(f"zoo:{name}"))
        except (NasError, RuntimeError, KeyError):
            continue
    return costs


def finish(run, study, quiet: bool = False) -> Path | None:
    """Write trials.csv, pareto.csv, pareto.png, best.yaml and report.md from the study."""
    from rich.console import Console

    from nas.commands.show import print_genotype_table

    cfg = run.config
    rows = trial_rows(study)
    write_csv(run.folder / "trials.csv", rows)
    front = pareto_front(rows)
    write_csv(run.folder / "pareto.csv", front)
    unit = "ms" if cfg.objective == "latency" else "macs"
    plot_pareto(run.folder / "pareto.png", rows, front, cfg.target, unit, _reference_costs(run))
    best = best_trials(study)
    summary = {"name": run.study_name, "config hash": cfg.hash(), "strategy": cfg.strategy, "reward": cfg.reward,
               "target": f"{cfg.target:g} {unit}", "trials": len(rows)}
    if not best:
        write_report(run.folder / "report.md", summary, front, rows, "no completed trial")
        return None
    # single objective: the best reward; Pareto: the most accurate front member within the target
    within = [t for t in best if t.user_attrs.get("cost", float("inf")) <= cfg.target]
    winner = max(within or best, key=lambda t: t.user_attrs["accuracy"])
    finalists = []
    if len(study.directions) == 1 and cfg.objective == "latency" and cfg.latency == "measure" and cfg.finalists > 1:
        done = scored_trials(study)
        finalists = remeasure(cfg, top_distinct(done, cfg.finalists))
        winner = {t.number: t for t in done}[finalists[0].trial]
    genotype = genotype_of(winner)
    genotype.name = f"{run.study_name}-trial{winner.number}"
    if finalists:
        final_cost, fingerprint = finalists[0].measured_ms, finalists[0].fingerprint
    else:
        final_cost, fingerprint = _final_cost(run, genotype)
    provenance = {
        "source": "nas search", "run": run.study_name, "trial": winner.number, "config_hash": cfg.hash(),
        "proxy_accuracy": winner.user_attrs.get("accuracy"),
        "reward": finalists[0].reward if finalists else winner.user_attrs.get("reward"),
        "search_cost": winner.user_attrs.get("cost"),
        ("latency_ms" if unit == "ms" else "macs"): final_cost,
        "latency_resolution": cfg.latency_resolution, "device": fingerprint or None,
        "finalists": len(finalists) or None,
    }
    best_path = write_best(run.folder / "best.yaml", genotype, provenance)
    table = io.StringIO()
    print_genotype_table(genotype, Console(file=table, width=110))
    summary.update({"winner": f"trial {winner.number}", "proxy accuracy": f"{winner.user_attrs['accuracy']:.4f}",
                    f"final {unit}": f"{final_cost:.4g}"})
    write_report(run.folder / "report.md", summary, front, rows, table.getvalue(),
                 finalists_table(finalists) if finalists else None)
    if not quiet:
        print(table.getvalue(), end="", flush=True)
    return best_path
