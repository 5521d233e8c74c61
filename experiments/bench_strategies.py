"""Benchmark the search strategies of ``nas.strategies`` on the NAS-Bench-201 table.

The objective suggests one categorical parameter per cell edge (6 edges x 5 ops) and returns the
200-epoch test accuracy of that cell from the table (maximised). Every trial counts as one query,
also a repeat of a cell already seen, as in the NAS-Bench-201 / regularized-evolution literature:
a strategy that avoids repeats gains from it, and that is part of what is measured.

For each strategy, dataset and seed the best-so-far accuracy is recorded after every query; the
report gives the probability of being within ``--tol`` points of the dataset's best and the mean best
accuracy at each checkpoint.

    python experiments/bench_strategies.py --seeds 100 --queries 50,100,200 --jobs 1 \\
        --out experiments/results/bench_strategies.md
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # small matrices: one thread
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import optuna  # noqa: E402

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.strategies import STRATEGIES, make_sampler  # noqa: E402

NB201_CSV = Path("/work/shared/data/nb201_all15625_test_acc_200ep.csv")
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES = ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")
NB201_COLUMNS = {"cifar10": "CIFAR10TestAccuracy200Epochs", "cifar100": "CIFAR100TestAccuracy200Epochs",
                 "imagenet16": "ImageNetTestAccuracy200Epochs"}
ANCHORS = ("REFERENCE.md, CIFAR-10 within 0.5 after 50 / 100 / 200: random 0.25 / 0.43 / 0.68, "
           "regularized evolution (P 10, S 3) 0.55 / 0.89 / 0.99; CIFAR-100 after 200: random 0.11, "
           "evolution 0.83.")


@dataclass
class Table:
    """A tabular benchmark: one op per edge, an accuracy per dataset for every cell."""

    edges: tuple[str, ...]
    ops: tuple[str, ...]
    acc: dict[str, dict[tuple[str, ...], float]]

    def best(self, dataset: str) -> float:
        return max(self.acc[dataset].values())


@dataclass
class Settings:
    """Strategy settings passed to ``make_sampler``."""

    population: int = 10
    tournament: int = 3
    n_startup: int = 10


@dataclass
class Summary:
    """Results of one strategy on one dataset over all seeds."""

    strategy: str
    dataset: str
    seeds: int
    checkpoints: list[int]
    p_within: list[float]
    mean_best: list[float]
    distinct: float  # mean number of distinct cells among the last checkpoint's queries
    seconds: float  # mean wall time of one run
    extra: dict[str, float] = field(default_factory=dict)


def parse_arch(arch: str) -> tuple[str, ...]:
    """``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|`` -> ``(a, b, c, d, e, f)``, in NB201_EDGES order."""
    ops = []
    for node in arch.strip("|").split("|+|"):
        ops += [edge.split("~")[0] for edge in node.strip("|").split("|")]
    return tuple(ops)


def load_nb201(path: Path = NB201_CSV) -> Table:
    acc: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in NB201_COLUMNS}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            cell = parse_arch(row["ArchitectureString"])
            for name, column in NB201_COLUMNS.items():
                acc[name][cell] = float(row[column])
    return Table(edges=NB201_EDGES, ops=NB201_OPS, acc=acc)


def run_one(table: Table, dataset: str, strategy: str, seed: int, n_queries: int,
            settings: Settings) -> tuple[np.ndarray, int]:
    """One search: (best-so-far accuracy after each query, number of distinct cells queried)."""
    accuracy = table.acc[dataset]

    def objective(trial: optuna.Trial) -> float:
        cell = tuple(trial.suggest_categorical(f"edge{i}", table.ops) for i in range(len(table.edges)))
        return accuracy[cell]

    sampler = make_sampler(strategy, seed=seed, population=settings.population,
                           tournament=settings.tournament, n_startup=settings.n_startup)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=n_queries)
    values = np.array([t.value for t in study.trials], dtype=float)
    distinct = len({tuple(sorted(t.params.items())) for t in study.trials})
    return np.maximum.accumulate(values), distinct


def within_probability(curves: np.ndarray, best: float, checkpoints: Sequence[int],
                       tol: float = 0.5) -> tuple[list[float], list[float]]:
    """(fraction of runs within ``tol`` of ``best``, mean best-so-far) after each checkpoint query."""
    at = curves[:, [c - 1 for c in checkpoints]]
    return ([float(p) for p in (at >= best - tol - 1e-9).mean(axis=0)], [float(m) for m in at.mean(axis=0)])


_TABLE: Table | None = None


def _init_worker(table: Table) -> None:
    global _TABLE
    _TABLE = table
    _quiet()


def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _task(args: tuple[str, str, int, int, Settings]) -> tuple[str, str, np.ndarray, int, float]:
    strategy, dataset, seed, n_queries, settings = args
    assert _TABLE is not None
    start = time.perf_counter()
    curve, distinct = run_one(_TABLE, dataset, strategy, seed, n_queries, settings)
    return strategy, dataset, curve, distinct, time.perf_counter() - start


def run_benchmark(table: Table, strategies: Sequence[str], datasets: Sequence[str], seeds: int,
                  checkpoints: Sequence[int], settings: Settings, jobs: int = 1,
                  tol: float = 0.5) -> list[Summary]:
    """Every strategy on every dataset for seeds 0 .. seeds-1; one Summary per (strategy, dataset)."""
    n_queries = max(checkpoints)
    tasks = [(s, d, seed, n_queries, settings) for s in strategies for d in datasets for seed in range(seeds)]
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs, _init_worker, (table,)) as pool:
            results = pool.map(_task, tasks, chunksize=max(1, len(tasks) // (8 * jobs)))
    else:
        _init_worker(table)
        results = [_task(t) for t in tasks]
    summaries = []
    for s in strategies:
        for d in datasets:
            mine = [r for r in results if r[0] == s and r[1] == d]
            p, mean = within_probability(np.stack([r[2] for r in mine]), table.best(d), checkpoints, tol)
            summaries.append(Summary(s, d, len(mine), list(checkpoints), p, mean,
                                     float(np.mean([r[3] for r in mine])), float(np.mean([r[4] for r in mine]))))
    return summaries


def to_markdown(summaries: Sequence[Summary], table: Table, command: str, settings: Settings,
                tol: float = 0.5) -> str:
    """Markdown report: one table per dataset, strategies as rows."""
    checkpoints = summaries[0].checkpoints
    lines = ["# Search strategies on the NAS-Bench-201 table", "",
             f"Command: `{command}`", "",
             f"Settings: population {settings.population}, tournament {settings.tournament}, "
             f"n_startup {settings.n_startup}; {summaries[0].seeds} seeds per strategy and dataset; "
             f"objective = 200-epoch test accuracy (maximised); every trial counts as a query, repeats included. "
             f"P = probability that the best so far is within {tol} points of the dataset's best "
             f"(binomial standard error up to {0.5 / np.sqrt(summaries[0].seeds):.2f}); "
             "`random, exact` = 1 - (1 - k/N)^q for k of the N cells within the tolerance. "
             "s / run = wall seconds of one run, on a shared machine.", "",
             ANCHORS, ""]
    for d in dict.fromkeys(s.dataset for s in summaries):
        good = sum(v >= table.best(d) - tol - 1e-9 for v in table.acc[d].values())
        lines += [f"## {d} (best {table.best(d):.2f}; {good} of {len(table.acc[d])} cells within {tol})", ""]
        head = ([f"P@{c}" for c in checkpoints] + [f"mean best @{c}" for c in checkpoints]
                + [f"distinct cells /{checkpoints[-1]}", "s / run"])
        lines += ["| strategy | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
        exact = [f"{1 - (1 - good / len(table.acc[d])) ** c:.2f}" for c in checkpoints]
        lines.append("| random, exact | " + " | ".join(exact + ["-"] * (len(checkpoints) + 2)) + " |")
        for s in (s for s in summaries if s.dataset == d):
            cells = ([f"{p:.2f}" for p in s.p_within] + [f"{m:.2f}" for m in s.mean_best]
                     + [f"{s.distinct:.1f}", f"{s.seconds:.2f}"])
            lines.append(f"| {s.strategy} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--queries", default="50,100,200", help="checkpoints, comma-separated")
    parser.add_argument("--datasets", default=",".join(NB201_COLUMNS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--tournament", type=int, default=3)
    parser.add_argument("--n-startup", type=int, default=10)
    parser.add_argument("--tol", type=float, default=0.5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--table", type=Path, default=NB201_CSV)
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    args = parser.parse_args(argv)
    checkpoints = sorted(int(q) for q in args.queries.split(","))
    datasets = args.datasets.split(",")
    strategies = args.strategies.split(",")
    table = load_nb201(args.table)
    unknown = [d for d in datasets if d not in table.acc]
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; allowed: {', '.join(table.acc)}")
    settings = Settings(args.population, args.tournament, args.n_startup)
    summaries = run_benchmark(table, strategies, datasets, args.seeds, checkpoints, settings, args.jobs, args.tol)
    command = "python experiments/bench_strategies.py " + " ".join(shlex.quote(a) for a in argv or sys.argv[1:])
    report = to_markdown(summaries, table, command, settings, args.tol)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
