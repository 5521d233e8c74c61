"""Latency-constrained search on NAS-Bench-201 with measured device latencies (HELP / HW-NAS-Bench).

For each device and budget T (a quantile of the device's latencies over the cells), every strategy runs
as ``nas search`` runs by default: a candidate's latency is known first, one more than 1.1 T over is
rejected before training (a pruned trial that still counts as a query), the others score
``mnasnet-hard`` (accuracy within T, accuracy x T / latency beyond), and the strategy is told T
(``make_sampler(..., cost_limit=T)``). The winner is the best-scored candidate within T (the best
over T only if none is). Reported over ``--runs`` seeds: the probability that the winner is within
``--tol`` points of the best cell within T (CIFAR-10, 200-epoch test accuracy), the mean regret, and
how often a winner is over T.

Score modes: ``exact`` (the table's accuracy), ``noisy`` (Gaussian noise sized so the noisy score
ranks the cells at Kendall tau ~0.5, like the one-epoch proxy), ``noisy+finalists`` (the same, then the
top 5 distinct candidates scored again with two fresh draws each, as the finalist stage does).

    python experiments/bench_constrained.py --runs 20 --queries 100 --jobs 2 \\
        --json experiments/results/bench_constrained.json --out experiments/results/bench_constrained.md
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.bench_strategies import NB201_CSV, load_nb201, parse_arch  # noqa: E402
from nas.search.reward import make_reward  # noqa: E402
from nas.strategies import make_sampler  # noqa: E402

LATENCY_CSV = Path("/work/shared/data/help_nb201_latency_ms.csv")
DEVICES = ("raspi4", "pixel3", "gold_6226", "titan_rtx_1", "fpga")
QUANTILES = (0.1, 0.3, 0.5)
DEGENERATE = 0.05  # a cell under 5% of the device's median latency computes (almost) nothing: dropped
REJECT = 1.1       # nas search's default reject_factor
MODES = ("exact", "noisy", "noisy+finalists")
FINALISTS, FINALIST_DRAWS = 5, 2
NAMES = {"default": "surrogate"}  # what `nas search` runs (strategy auto -> surrogate)


@dataclass(frozen=True)
class Problem:
    """One device and budget: accuracy and latency per cell, the budget and the best cell within it."""

    device: str
    quantile: float
    target: float
    accuracy: dict
    latency: dict
    optimum: float
    noise: float  # the standard deviation of the noisy score (points)


def load_latencies(path: Path, device: str) -> dict[tuple[str, ...], float]:
    with open(path, newline="") as f:
        rows = {parse_arch(r["arch_str"]): float(r[device]) for r in csv.DictReader(f)}
    median = float(np.median(list(rows.values())))
    return {cell: ms for cell, ms in rows.items() if ms > DEGENERATE * median}


def noise_for_tau(values: np.ndarray, tau: float = 0.5, seed: int = 0) -> float:
    """The Gaussian noise (points) under which a noisy score ranks ``values`` at Kendall tau ~``tau``."""
    rng = np.random.default_rng(seed)
    sample = rng.choice(values, size=min(2000, len(values)), replace=False)
    low, high = 0.01, 20.0
    for _ in range(30):
        mid = (low * high) ** 0.5
        got = kendalltau(sample, sample + rng.normal(0, mid, len(sample)))[0]
        low, high = (mid, high) if got > tau else (low, mid)
    return (low * high) ** 0.5


def problems(table_path: Path, latency_path: Path) -> list[Problem]:
    accuracy = load_nb201(table_path).acc["cifar10"]
    out = []
    for device in DEVICES:
        latency = load_latencies(latency_path, device)
        cells = [c for c in latency if c in accuracy]
        acc = {c: accuracy[c] for c in cells}
        lat = {c: latency[c] for c in cells}
        noise = noise_for_tau(np.array(list(acc.values())))
        for q in QUANTILES:
            target = float(np.quantile(list(lat.values()), q))
            optimum = max(a for c, a in acc.items() if lat[c] <= target)
            out.append(Problem(device, q, target, acc, lat, optimum, noise))
    return out


def run_one(problem: Problem, strategy: str, mode: str, seed: int, queries: int) -> tuple[float, bool]:
    """One search: (the winner's true accuracy, whether the winner is over T)."""
    rng = np.random.default_rng(seed + 1000)
    reward = make_reward("mnasnet-hard", problem.target, reject_factor=REJECT)
    ops = sorted({op for cell in problem.accuracy for op in cell})
    noisy = mode != "exact"

    def score(cell) -> float:
        return problem.accuracy[cell] + (rng.normal(0, problem.noise) if noisy else 0.0)

    def objective(trial: optuna.Trial) -> float:
        cell = tuple(trial.suggest_categorical(f"edge{i}", ops) for i in range(6))
        if cell not in problem.latency:
            raise optuna.TrialPruned("a degenerate cell")
        ms = problem.latency[cell]
        trial.set_user_attr("cost", ms)
        trial.set_user_attr("cell", list(cell))
        if reward.rejects(ms):
            raise optuna.TrialPruned("rejected before training")
        return reward(score(cell), ms)

    study = optuna.create_study(direction="maximize", sampler=make_sampler(
        NAMES.get(strategy, strategy), seed, cost_limit=reward.cost_limit))
    study.optimize(objective, n_trials=queries)
    return _winner(study, problem, mode, score)


def _winner(study, problem: Problem, mode: str, score) -> tuple[float, bool]:
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return float("nan"), True
    best: dict[tuple, float] = {}
    for t in done:
        cell = tuple(t.user_attrs["cell"])
        best[cell] = max(best.get(cell, -np.inf), t.value)
    if mode == "noisy+finalists":
        top = sorted(best, key=best.get, reverse=True)[:FINALISTS]
        if not any(problem.latency[c] <= problem.target for c in top):  # as nas.search.finalists.finalist_pool
            within = [c for c in best if problem.latency[c] <= problem.target]
            top = top[:-1] + [max(within, key=best.get)] if within else top
        reward = make_reward("mnasnet-hard", problem.target)
        best = {c: reward(np.mean([score(c) for _ in range(FINALIST_DRAWS)]), problem.latency[c]) for c in top}
    within = [c for c in best if problem.latency[c] <= problem.target]
    pool = within or list(best)
    cell = max(pool, key=best.get)
    return problem.accuracy[cell], problem.latency[cell] > problem.target


_PROBLEMS: list[Problem] = []


def _init(items: list[Problem]) -> None:
    global _PROBLEMS
    _PROBLEMS = items
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")


def _task(args: tuple[int, str, str, int, int]) -> tuple[int, str, str, float, bool]:
    index, strategy, mode, seed, queries = args
    accuracy, over = run_one(_PROBLEMS[index], strategy, mode, seed, queries)
    return index, strategy, mode, accuracy, over


def run_benchmark(items: list[Problem], strategies: Sequence[str], modes: Sequence[str], runs: int,
                  queries: int, jobs: int, tol: float) -> list[dict]:
    tasks = [(i, s, m, seed, queries) for i in range(len(items)) for s in strategies for m in modes
             for seed in range(runs)]
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs, _init, (items,)) as pool:
            results = pool.map(_task, tasks, chunksize=4)
    else:
        _init(items)
        results = [_task(t) for t in tasks]
    out = []
    for i, p in enumerate(items):
        entry = {"device": p.device, "quantile": p.quantile, "T": round(p.target, 4), "optimum": p.optimum,
                 "noise": round(p.noise, 3), "strategies": {}}
        for s in strategies:
            for m in modes:
                mine = [(a, o) for j, ss, mm, a, o in results if j == i and ss == s and mm == m]
                regret = [p.optimum - a for a, _ in mine]
                name = s if m == "exact" else f"{s} ({m})"
                entry["strategies"][name] = {
                    f"p_within_{tol:g}": float(np.mean([r <= tol for r in regret])),
                    "mean_regret": float(np.nanmean(regret)), "infeasible_winners": int(sum(o for _, o in mine)),
                    "runs": len(mine)}
        out.append(entry)
    return out


def to_markdown(entries: list[dict], command: str, tol: float, runs: int, queries: int) -> str:
    names = list(entries[0]["strategies"])
    key = next(iter(entries[0]["strategies"][names[0]]))
    lines = ["# Latency-constrained search on NAS-Bench-201 (HELP device latencies)", "",
             f"Command: `{command}`", "",
             f"{runs} runs per row, {queries} queries each (a rejected candidate is a query); CIFAR-10 200-epoch "
             f"test accuracy; T = the device's latency quantile over the cells (cells under {DEGENERATE:.0%} of "
             f"the median dropped). Cells: P(winner within {tol} points of the best cell within T) / mean regret "
             "(points) / winners over T. `default` is what `nas search` runs (the surrogate, told T). Noisy: "
             "Gaussian noise sized to Kendall tau 0.5 against the table (the `noise` column, points); "
             f"finalists: the top {FINALISTS} scored again with {FINALIST_DRAWS} fresh draws each.", ""]
    lines += ["| device | q | T (ms) | optimum | noise | " + " | ".join(names) + " |",
              "|---" * (5 + len(names)) + "|"]
    for e in entries:
        cells = [f"{e['strategies'][n][key]:.2f} / {e['strategies'][n]['mean_regret']:.2f} / "
                 f"{e['strategies'][n]['infeasible_winners']}" for n in names]
        lines.append(f"| {e['device']} | {e['quantile']} | {e['T']:.3g} | {e['optimum']:.2f} | {e['noise']:.2f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--strategies", default="default,random")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--tol", type=float, default=0.3)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--table", type=Path, default=NB201_CSV)
    parser.add_argument("--latencies", type=Path, default=LATENCY_CSV)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    items = problems(args.table, args.latencies)
    entries = run_benchmark(items, args.strategies.split(","), args.modes.split(","), args.runs, args.queries,
                            args.jobs, args.tol)
    command = "python experiments/bench_constrained.py " + " ".join(shlex.quote(a) for a in argv or sys.argv[1:])
    report = to_markdown(entries, command, args.tol, args.runs, args.queries)
    print(report)
    for path, text in ((args.json, json.dumps(entries, indent=1) + "\n"), (args.out, report)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
