"""Validate latency prediction against robust measurements on this machine; time the table's build.

Sections (each optional, all written to one markdown report):

* ``--build K``: time the parts of K random default-space networks inside them in a fresh private table
  (what ``nas latency build-lut --networks K`` does) and report the wall time and how many of the space's
  parts (``space_parts(default_space())``) the table then holds.
* Networks: N random default-space networks (resolution 224, batch 1) and, with ``--zoo``, every
  zoo network at its own resolution, measured whole (median of interleaved rounds; cached, so a
  re-run only measures what is new); ``--retest`` measures them all again, uncached: the share a
  second measurement agrees within 10% is the machine's own limit.
* Out of the box (``--first-use``): a fresh table with no build and no correction predicts every
  network: parts timed inside each network on demand, the first prediction calibrates on the reference
  networks.
  Reports within +-10% / +-20% of the measured median and how often the interval holds it.
* Learned from measured networks: 2-fold on the random networks (fit on one half, predict the
  other): the table + correction fitted on the half, and the learned predictors
  (``predictors.latency.model``) on cost features with and without the table sum.
* ``--cli-calls``: ``nas latency zoo:X --predict --json`` for every zoo network (and ``--width W``
  variants) in a fresh cache dir, as a new user runs it: wall time of the first and later calls.

    python experiments/bench_latency.py --n 200 --threads 1 --zoo --retest --first-use --build 200 \\
        --cli-calls --out experiments/results/bench_latency.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictors.latency.conditions import MeasureConfig  # noqa: E402
from predictors.latency.measure import measure_many  # noqa: E402
from predictors.latency.model import LatencyModel, Sample, accuracy_report, time_per_prediction  # noqa: E402
from predictors.latency.parts import CostTable, cost_features  # noqa: E402
from predictors.latency.space_parts import space_parts  # noqa: E402
from predictors.latency.table import PART_PROFILE, LatencyTable  # noqa: E402
from searchspace import load_genotype  # noqa: E402
from searchspace.io import zoo_names  # noqa: E402
from searchspace.space import default_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def sample_genotypes(n: int, seed: int) -> list:
    """N distinct genotypes of the default space (224, batch 1)."""
    space, seen, out, i = default_space(), set(), [], 0
    while len(out) < n:
        g = space.random_genotype(seed * 1_000_003 + i)
        i += 1
        if g.hash() not in seen:
            seen.add(g.hash())
            out.append(g)
    return out


def two_fold(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    idx = np.random.RandomState(seed).permutation(n)
    a, b = np.sort(idx[: n // 2]), np.sort(idx[n // 2:])
    return [(a, b), (b, a)]


def zoo_list(args) -> list[str]:
    return args.zoo_names.split(",") if args.zoo_names else zoo_names()


def private_table(args, folder: str) -> LatencyTable:
    """A table (and part-cost cache) of its own in ``folder``, for this machine's conditions."""
    config = replace(PART_PROFILE, backend=args.backend, threads=args.threads)
    return LatencyTable(config, Path(folder) / "lut.jsonl", CostTable(Path(folder) / "costs.jsonl"),
                        notify=log)


def build_section(args) -> list[str]:
    """Time the parts of ``args.build`` random default-space networks inside them, in a fresh table."""
    networks = sample_genotypes(args.build, args.seed + 7)
    with tempfile.TemporaryDirectory() as folder:
        table = private_table(args, folder)
        start = time.perf_counter()
        counts = table.profile_many(networks, progress=lambda d, t: log(f"build: {d}/{t} networks") if d % 50 == 0
                                    else None)
        wall = time.perf_counter() - start
        every = space_parts(default_space())
        held = len(every) - len(table.missing(every))
    return [f"Build from {args.build} random default-space networks (their parts timed inside them): "
            f"{counts['added']} parts ({counts['measured']} timed, {counts['shared']} shared with an equal part) in "
            f"{wall / 60:.1f} min ({args.build / wall:.1f} networks/s), {table.memory_format}; the table then holds "
            f"{held} of the space's {len(every)} parts.", ""]


def first_use_section(args, groups: dict[str, tuple[list, np.ndarray]], retests: dict[str, list[float]]) -> list[str]:
    """A fresh table, no build, no correction: predict every network (calibration on first use).
    With ``--dump``: every network, its measurements and its correction features in that table, as JSON."""
    lines = ["Out of the box (a fresh table: each network's new parts timed inside it on demand, the first "
             "prediction calibrates on the reference networks measured whole):", ""]
    with tempfile.TemporaryDirectory() as folder:
        table = private_table(args, folder)
        start = time.perf_counter()
        table.predict(groups["random"][0][0])
        lines.append(f"First prediction (profiling its parts and calibrating on {table.correction.n} networks): "
                     f"{time.perf_counter() - start:.1f} s.")
        lines += ["", "| networks | within 10% | within 20% | Spearman | MAPE | measured inside the interval |",
                  "|---|---|---|---|---|---|"]
        for name, (genotypes, measured) in groups.items():
            lines.append(_accuracy_row(f"{name} ({len(genotypes)})", table, genotypes, measured))
        lines += ["", *(_family_errors(name, table, *group) for name, group in groups.items()), ""]
        if "random" in groups and "zoo" in groups:  # as a search would: its measured networks join the data
            table.observe_many(*groups["random"])
            lines.append(_accuracy_row(f"zoo ({len(groups['zoo'][0])}), after the random networks joined the "
                                       "correction", table, *groups["zoo"]))
        if args.dump:  # the networks measured here, then every network the table observed (references first)
            Path(args.dump).write_text(json.dumps([
                {"group": name, "genotype": g.to_dict(with_provenance=False), "resolution": g.resolution,
                 "measured_ms": float(ms), "retest_ms": retests.get(name, [None] * len(measured))[i],
                 "features": table.correction_features(g)}
                for name, (genotypes, measured) in groups.items()
                for i, (g, ms) in enumerate(zip(genotypes, measured, strict=True))]
                + [{"group": "observed", **record} for record in table.observations.records()]))
    return [*lines, ""]


def _accuracy_row(label: str, table: LatencyTable, genotypes: list, measured: np.ndarray) -> str:
    preds = [table.predict_interval(g) for g in genotypes]
    r = accuracy_report(measured, [p.ms for p in preds])
    inside = np.mean([p.low_ms <= m <= p.high_ms for p, m in zip(preds, measured, strict=True)])
    return (f"| {label} | {r['within_10']:.1%} | {r['within_20']:.1%} | {r['spearman']:.3f} | {r['mape']:.1f}% | "
            f"{inside:.1%} |")


def _family_errors(label: str, table: LatencyTable, genotypes: list, measured: np.ndarray) -> str:
    """Median signed error of the prediction by each network's main family (the largest share of its table sum)."""
    errors: dict[str, list[float]] = {}
    for g, ms in zip(genotypes, measured, strict=True):
        sums = table.group_sums(g)
        family = max((k for k in sums if k.endswith("_ms") and k not in ("table_ms", "stem_ms", "head_ms")),
                     key=sums.__getitem__)[:-3]
        errors.setdefault(family, []).append(100 * (table.predict(g) - ms) / ms)
    cells = [f"{f} {np.median(e):+.1f}% (n={len(e)})" for f, e in sorted(errors.items(), key=lambda kv: -len(kv[1]))]
    return f"Median error by main family, {label}: " + ", ".join(cells) + "."


def learned_section(args, genotypes: list, y: np.ndarray, table: LatencyTable) -> list[str]:
    """2-fold on the random networks: table + correction fitted on one half, learned predictors."""
    table_sum = np.array([table.table_ms(g) for g in genotypes])
    for g in genotypes:
        cost_features(g)  # part costs are counted once; predictions only look up
    names = ("lut_corrected", "model_cost", "model_cost_lut")
    predictions = {name: np.zeros(len(y)) for name in names}
    warm: dict[str, list[float]] = {name: [] for name in names}
    for train, test in two_fold(len(y), args.seed):
        test_g = [genotypes[i] for i in test]
        fold_table = LatencyTable(table.config, table.path, table.costs)
        fold_table.fit_correction([genotypes[i] for i in train], y[train], save=False)
        models = {"lut_corrected": fold_table}
        for name, with_table in (("model_cost", None), ("model_cost_lut", fold_table)):
            models[name] = LatencyModel("auto", 1, with_table, seed=args.seed).fit(
                [Sample(genotypes[i], float(y[i])) for i in train])
        for name, predictor in models.items():
            predictions[name][test] = [predictor.predict(g) for g in test_g]
            warm[name].append(time_per_prediction(predictor.predict, test_g))
    labels = {"lut_sum": "lookup-table sum (no correction)", "lut_corrected": "lookup table + correction",
              "model_cost": "learned predictor, cost features",
              "model_cost_lut": "learned predictor, cost features + table sum"}
    lines = ["Learned from measured networks (2-fold on the random networks: fit on one half, predict the other):", "",
             "| predictor | within 10% | within 20% | Spearman | MAPE | ms / prediction (warm) |", "|---|---|---|---|---|---|"]
    for name, pred in {"lut_sum": table_sum, **predictions}.items():
        r = accuracy_report(y, pred)
        ms = f"{np.mean(warm[name]) * 1e3:.3f}" if name in warm else "-"
        lines.append(f"| {labels[name]} | {r['within_10']:.1%} | {r['within_20']:.1%} | {r['spearman']:.3f} | "
                     f"{r['mape']:.1f}% | {ms} |")
    return [*lines, ""]


def cli_section(args) -> list[str]:
    """`nas latency zoo:X --predict --json` in a fresh cache dir: every call answers; wall times."""
    names = zoo_list(args)
    variants = [[f"zoo:{name}"] for name in names]
    variants += [[f"zoo:{name}", "--width", w] for w in args.cli_widths.split(",") if w for name in names]
    times, failures = [], []
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "NAS_CACHE_DIR": folder}
        for argv in variants:
            command = [sys.executable, "-m", "nas.cli", "latency", *argv, "--predict", "--json",
                       *(["--threads", str(args.threads)] if args.threads else [])]
            start = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            ok = done.returncode == 0 and {"predicted_ms", "low_ms", "high_ms"} <= json.loads(done.stdout or "{}").keys()
            if not ok:
                failures.append(" ".join(argv))
            log(f"{' '.join(argv)}: {times[-1]:.1f} s" + ("" if ok else f" FAILED: {done.stderr.strip()[-200:]}"))
    later = np.array(times[1:])
    return [f"`nas latency zoo:X --predict --json` in a fresh cache dir, {len(variants)} calls ({len(names)} zoo networks"
            + (f", and at width {args.cli_widths}" if args.cli_widths else "") + f"): {len(variants) - len(failures)} "
            f"answered{' (failed: ' + ', '.join(failures) + ')' if failures else ''}. First call {times[0]:.1f} s "
            f"(calibration included); later calls median {np.median(later):.1f} s, max {later.max():.1f} s "
            "(each a new process: imports, and profiling the parts the table lacks).", ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="random default-space networks (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", default="torch")
    p.add_argument("--round-seconds", type=float, default=0.25, help="time per network per round")
    p.add_argument("--reps", type=int, default=40, help="most timed repetitions per network")
    p.add_argument("--zoo", action="store_true", help="also every zoo network, at its own resolution")
    p.add_argument("--retest", action="store_true", help="measure every network again, uncached (the noise ceiling)")
    p.add_argument("--first-use", action="store_true", help="predict with a fresh table: no build, no correction")
    p.add_argument("--build", type=int, help="time a table's build from this many random networks")
    p.add_argument("--cli-calls", action="store_true", help="time `nas latency zoo:X --predict --json`, fresh cache")
    p.add_argument("--cli-widths", default="0.5", help="width variants for --cli-calls (comma-separated)")
    p.add_argument("--zoo-names", default="", help="zoo networks for --zoo and --cli-calls (comma-separated; "
                                                   "default: all)")
    p.add_argument("--out", default="experiments/results/bench_latency.md")
    p.add_argument("--dump", help="JSON file: every measured network with its retest and table features "
                                  "(for studying the correction offline)")
    args = p.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    start = time.perf_counter()
    warnings.simplefilter("ignore", RuntimeWarning)  # noisy measurements are counted in the report
    table = LatencyTable.for_this_device(args.backend, args.threads)
    fp = table.fingerprint
    lines = ["# Latency prediction validation (bench_latency.py)", "", f"Command: `{command}`", "",
             f"Device: {fp.cpu} ({fp.machine}, {fp.cores} cores), {fp.threads} thread(s), backend {fp.backend}, "
             f"{table.memory_format}, torch {fp.torch}, onnxruntime {fp.onnxruntime}, Python "
             f"{platform.python_version()}; fingerprint {fp.id()}.", ""]
    if args.build:
        log("build")
        lines += build_section(args)

    whole = MeasureConfig(backend=args.backend, threads=args.threads, warmup=3, reps=args.reps, min_reps=8,
                          rounds=4, round_seconds=args.round_seconds, target_spread=0.02)
    groups: dict[str, tuple[list, np.ndarray]] = {}
    retests: dict[str, list[float]] = {}
    if args.n:
        groups["random"] = (sample_genotypes(args.n, args.seed), np.zeros(0))
    if args.zoo:
        groups["zoo"] = ([load_genotype(f"zoo:{name}") for name in zoo_list(args)], np.zeros(0))
    for name, (genotypes, _) in list(groups.items()):
        log(f"measuring {len(genotypes)} {name} networks")
        measured = measure_many(genotypes, whole, progress=lambda d, t: log(f"measured {d}/{t}") if d % 24 == 0 else None)
        y = np.array([m.median_ms for m in measured])
        groups[name] = (genotypes, y)
        lines.append(f"Measured {name} networks ({len(y)}): min {y.min():.2f} ms, median {np.median(y):.2f} ms, max "
                     f"{y.max():.2f} ms; {sum(m.noisy for m in measured)} noisy (IQR > 10% of median); median IQR/median "
                     f"{np.median([m.iqr_ms / m.median_ms for m in measured]):.1%}.")
        if args.retest:
            again = np.array([m.median_ms for m in measure_many(genotypes, whole, cache=None)])
            retests[name] = [float(v) for v in again]
            r = accuracy_report(y, again)
            lines.append(f"Retest ({name}, measured again uncached): the second median is within 10% of the first for "
                         f"{r['within_10']:.1%} (within 20%: {r['within_20']:.1%}, Spearman {r['spearman']:.3f}). "
                         "No predictor can agree with one measurement more often than a second measurement does.")
    lines.append("")
    if args.first_use and groups:
        log("first use")
        lines += first_use_section(args, groups, retests)
    if "random" in groups and len(groups["random"][0]) >= 10:
        log("learned predictors")
        lines += learned_section(args, *groups["random"], table)
    if args.cli_calls:
        log("cli calls")
        lines += cli_section(args)
    lines += [f"Total {(time.perf_counter() - start) / 60:.1f} min. Reference: nn-Meter 99.0% within 10% on a mobile "
              "CPU; a plain per-layer table 52-76% on phones.", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
