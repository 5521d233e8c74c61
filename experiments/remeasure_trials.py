"""Measure a finished search's last trials again, now, and compare with the search's figures.

Rebuilds each trial's genotype from its parameters in ``study.db`` (with the number of classes of the
run's ``best.yaml``; checked against the hash the search recorded), measures them in sets of 6 as the search's cost model does (batch 1, channels_last,
``--threads``, nothing from the cache) and prints each one's search and new latency and the median ratio.
Only for runs of the default space with a latency objective.

    python experiments/remeasure_trials.py runs/search-20261202-195657 --last 18 --threads 2
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402

from predictors.latency.conditions import MeasureConfig  # noqa: E402
from predictors.latency.measure import measure_many  # noqa: E402
from searchspace import load_genotype, with_scaling  # noqa: E402
from searchspace.space import default_space  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a search's output folder (study.db, trials.csv)")
    parser.add_argument("--last", type=int, default=18, help="how many of the last completed trials")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = Path(args.run)
    with open(run / "trials.csv", newline="") as f:
        rows = {int(r["number"]): r for r in csv.DictReader(f) if r["state"] == "COMPLETE" and r["cost"]}
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run / 'study.db'}")
    trials = [t for t in study.trials if t.number in rows][-args.last:]
    space = default_space()
    winner = load_genotype(run / "best.yaml")
    space.config.head["num_classes"] = winner.head["num_classes"]  # as the search set it from its data set
    genotypes = []
    for trial in trials:
        genotype = space.sample(optuna.trial.FixedTrial(trial.params))
        if genotype.hash() != rows[trial.number]["hash"]:
            raise SystemExit(f"trial {trial.number}: rebuilt genotype differs from the search's "
                             "(not the default space?)")
        genotypes.append(with_scaling(genotype, resolution=args.resolution))
    measured = measure_many(genotypes, MeasureConfig(threads=args.threads), cache=None)
    ratios = []
    print("| trial | search ms | now ms | now / search |\n|---|---|---|---|")
    for trial, m in zip(trials, measured, strict=True):
        search_ms = float(rows[trial.number]["cost"])
        ratios.append(m.median_ms / search_ms)
        print(f"| {trial.number} | {search_ms:.3f} | {m.median_ms:.3f} | {ratios[-1]:.3f} |")
    print(f"\n{len(ratios)} trials: now / search median {statistics.median(ratios):.3f}, "
          f"range {min(ratios):.3f}-{max(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
