"""The search winner against what a user would pick instead at the same budget T, all trained for real.

For a search run (``runs/NAME``: ``best.yaml`` and ``config.json``, T = the run's target) this

1. scales each hand-designed family (``--zoo``, default the search's starting points: MobileNetV3-Large/Small,
   EfficientNet-B0, ShuffleNetV2, GhostNet) to T by bisecting its width (``nas.search.starts.scaled_to_target``,
   latency measured now, not taken from the winner);
2. draws networks at random from the run's space (seeded) until ``--random`` of them measure within
   [``--low`` T, T] (the random-sampling baseline of Yang et al., ICLR 2020); the chosen networks are kept in
   ``WORK/networks.yaml`` so that a resumed comparison trains the same ones;
3. trains every network with ``nas.train`` (the recipe of ``experiments/train_comparison.py``: the search's
   proxy resolution and width, all training images, ``--epochs`` epochs) under ``--seeds`` seeds, each run in
   ``WORK/<network>/seed<S>/`` (a finished run is read back, a killed one resumed from its last epoch);
4. measures every network side by side (careful, interleaved rounds, no cache) and writes each row's mean,
   standard error and latency, the winner's gap to every row (beyond two standard errors or not), and its
   relative improvement over the random networks' mean with a 95% confidence interval (``--out``;
   ``WORK/summary.json``).

    python experiments/compare_at_target.py runs/NAME --seeds 3 --epochs 6 \\
        --out experiments/results/compare_at_target.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from compare_handdesigned import latency, names, run_config  # noqa: E402
from scipy import stats  # noqa: E402
from train_comparison import Network, mean_sd, trained  # noqa: E402

from nas.search.setup import searched_space  # noqa: E402
from nas.search.starts import scaled_to_target, zoo_for_data  # noqa: E402
from predictors.cost import count_macs, count_params  # noqa: E402
from predictors.latency.conditions import CAREFUL  # noqa: E402
from predictors.latency.measure import measure_many  # noqa: E402
from predictors.training.recipe import data_keys  # noqa: E402
from searchspace import Genotype, build, load_genotype, parse_genotype, with_scaling  # noqa: E402

STARTS = "mobilenet_v3_large,mobilenet_v3_small,efficientnet_b0,shufflenet_v2_x1_0,ghostnet_100"
RANDOM_PREFIX = "random"


def is_random(net: Network) -> bool:
    """A row of the random-sampling baseline."""
    return net.label.startswith(RANDOM_PREFIX)


def random_within(space, count: int, low_ms: float, high_ms: float, measure, seed: int, max_draws: int,
                  log=print) -> list[tuple[Genotype, float, int]]:
    """The first ``count`` seeded draws from ``space`` whose ``measure`` is within [low_ms, high_ms]:
    (genotype, ms, draw index). Fewer when ``max_draws`` draws do not hold that many."""
    found = []
    for draw in range(max_draws):
        genotype = space.random_genotype(seed * 100003 + draw)
        ms = measure(genotype)
        if low_ms <= ms <= high_ms:
            found.append((genotype, ms, draw))
            log(f"draw {draw}: {ms:.2f} ms, kept ({len(found)}/{count})")
            if len(found) == count:
                break
    return found


def choose_networks(run: Path, cfg, args, work: Path) -> list[Network]:
    """The winner, the zoo networks scaled to T and the random networks, chosen once per WORK folder."""
    path = work / "networks.yaml"
    if path.is_file():
        saved = yaml.safe_load(path.read_text())
        return [Network(label, parse_genotype(g)) for label, g in saved.items()]
    winner = load_genotype(run / "best.yaml")
    classes = winner.head["num_classes"]
    rows = [Network("winner", winner)]

    def measure(g: Genotype) -> float:
        return latency(g, cfg)

    for name in names(args.zoo):
        g, ms = scaled_to_target(zoo_for_data(name, classes), measure, cfg.target)
        print(f"{name}: width {g.scaling['width']:g} at {ms:.2f} ms", flush=True)
        rows.append(Network(f"{name} x{g.scaling['width']:g}", g))
    drawn = random_within(searched_space(cfg), args.random, args.low * cfg.target, cfg.target, measure,
                          args.draw_seed, args.max_draws, log=lambda text: print(text, flush=True))
    if len(drawn) < args.random:
        print(f"only {len(drawn)} of {args.max_draws} random draws measured within [{args.low:g} T, T]", flush=True)
    rows += [Network(f"{RANDOM_PREFIX} {i} (draw {draw})", g) for i, (g, _, draw) in enumerate(drawn)]
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({r.label: r.genotype.to_dict() for r in rows}, sort_keys=False))
    return rows


def standard_error(sd: float, n: int) -> float:
    return sd / math.sqrt(n) if n > 1 else float("nan")


def gap_against(winner: dict, row: dict) -> dict:
    """The winner's gap to one row in points, its standard error (both rows' seeds) and whether the gap is
    beyond two standard errors."""
    gap = winner["test_mean"] - row["test_mean"]
    se = math.hypot(winner["test_se"], row["test_se"])
    return {"label": row["label"], "gap": 100 * gap, "se": 100 * se, "beyond_2se": bool(gap > 2 * se)}


def relative_to_random(winner: dict, randoms: list[dict], level: float = 0.95) -> dict | None:
    """The winner's relative improvement over the random networks' mean accuracy, with a ``level``
    confidence interval: the random mean's error is the spread of the networks' means (a network is the
    unit drawn), the winner's its seeds'; Welch-Satterthwaite degrees of freedom."""
    if len(randoms) < 2:
        return None
    means = [r["test_mean"] for r in randoms]
    base = statistics.mean(means)
    var_random = statistics.variance(means) / len(means)
    var_winner = winner["test_se"] ** 2 if not math.isnan(winner["test_se"]) else 0.0
    se = math.sqrt(var_random + var_winner)
    parts = [(var_random, len(means) - 1)] + ([(var_winner, winner["seeds"] - 1)] if var_winner else [])
    dof = se ** 4 / sum(v ** 2 / d for v, d in parts) if se > 0 else float("inf")
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    gap = winner["test_mean"] - base
    return {"random_mean": base, "relative": gap / base, "low": (gap - half) / base, "high": (gap + half) / base,
            "level": level, "networks": len(means), "dof": dof}


def verdict(rows: list[dict], target: float) -> tuple[list[str], dict]:
    """The issue's goal checked on the numbers: the winner within T, above every baseline row and above the
    random networks' mean, each gap beyond two standard errors."""
    winner, others = rows[0], rows[1:]
    gaps = [gap_against(winner, r) for r in others if not r["random"]]
    randoms = [r for r in others if r["random"]]
    relative = relative_to_random(winner, randoms)
    lines = [f"- Winner within T: {'yes' if winner['latency_ms'] <= target else 'no'} "
             f"({winner['latency_ms']:.2f} vs {target:g} ms, measured side by side)."]
    for g in gaps:
        lines.append(f"- Against {g['label']}: {g['gap']:+.2f} points (standard error {g['se']:.2f}): "
                     f"{'beyond' if g['beyond_2se'] else 'not beyond'} two standard errors.")
    if relative:
        lines.append(f"- Against the {relative['networks']} random networks' mean ({relative['random_mean']:.4f}): "
                     f"{100 * relative['relative']:+.2f}% relative, {relative['level']:.0%} confidence interval "
                     f"[{100 * relative['low']:+.2f}%, {100 * relative['high']:+.2f}%].")
    met = bool(all(g["beyond_2se"] for g in gaps) and relative and relative["low"] > 0)
    lines.append(f"- Goal (above every baseline row and the random mean, each beyond two standard errors): "
                 f"{'met' if met else 'not met'}.")
    return lines, {"gaps": gaps, "relative_to_random": relative, "met": met}


def table_rows(nets: list[Network], results: dict, cfg) -> list[dict]:
    """One row per network: accuracies over seeds, params, MACs and latency measured side by side now."""
    measured = measure_many([with_scaling(n.genotype, resolution=cfg.latency_resolution) for n in nets],
                            dataclasses.replace(CAREFUL, backend=cfg.latency_backend, threads=cfg.latency_threads,
                                                resolution=cfg.latency_resolution), cache=None)
    rows = []
    for n, m in zip(nets, measured, strict=True):
        model = build(with_scaling(n.genotype, resolution=cfg.latency_resolution))
        tests = [r["test_accuracy"] for r in results[n.label]]
        mean, sd = mean_sd(tests)
        rows.append({"label": n.label, "random": is_random(n), "tests": tests, "seeds": len(tests),
                     "test_mean": mean, "test_sd": sd, "test_se": standard_error(sd, len(tests)),
                     "params": count_params(model), "macs": count_macs(model, cfg.latency_resolution,
                                                                       n.genotype.input["channels"]),
                     "latency_ms": m.median_ms, "latency_iqr_ms": m.iqr_ms,
                     "train_seconds": sum(r["train_seconds"] for r in results[n.label])})
    return rows


def markdown(rows: list[dict], verdict_lines: list[str], header: str, footer: str) -> str:
    lines = [header, "", "| network | test accuracy (mean) | standard error | seeds | latency (ms) | params | MACs |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['test_mean']:.4f} | {r['test_se']:.4f} | {r['seeds']} | "
                     f"{r['latency_ms']:.2f} | {r['params']:,} | {r['macs'] / 1e6:.1f}M |")
    return "\n".join([*lines, "", *verdict_lines, "", footer]) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="search run folder (best.yaml, config.json)")
    parser.add_argument("--zoo", default=STARTS, help="zoo names width-scaled to T ('' for none)")
    parser.add_argument("--random", type=int, default=5, help="random networks of the space within [LOW T, T]")
    parser.add_argument("--low", type=float, default=0.8, help="lower latency bound of a random network, x T")
    parser.add_argument("--draw-seed", type=int, default=0, help="seed of the random draws")
    parser.add_argument("--max-draws", type=int, default=400, help="random draws measured at most")
    parser.add_argument("--seeds", type=int, default=3, help="trainings per network (seeds 0..N-1)")
    parser.add_argument("--epochs", type=int, default=6, help="nas train epochs")
    parser.add_argument("--subset", type=int, help="training images per run (default: all)")
    parser.add_argument("--data", help="data set or ImageFolder folder (default: the search's)")
    parser.add_argument("--work", type=Path, help="folder of the trainings (default: runs/compare_at_target/RUN)")
    parser.add_argument("--out", type=Path, help="markdown table")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--choose-only", action="store_true",
                        help="choose the networks (latency measured, so alone on the machine) and stop")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    start = time.time()
    cfg = run_config(args.run)
    data = data_keys(args.data) if args.data else {"dataset": cfg.proxy.dataset, "data_dir": cfg.proxy.data_dir}
    work = args.work or Path("runs") / "compare_at_target" / args.run.name
    nets = choose_networks(args.run, cfg, args, work)
    if args.choose_only:
        print(f"{len(nets)} networks in {work / 'networks.yaml'}")
        return
    results = {}
    for n in nets:
        results[n.label] = [trained(n, cfg, args, data, s, work) for s in range(args.seeds)]
        print(f"{n.label}: {[round(r['test_accuracy'], 4) for r in results[n.label]]}", flush=True)
    rows = table_rows(nets, results, cfg)
    lines, summary = verdict(rows, cfg.target)
    first = results[nets[0].label][0]
    header = (f"# The winner of `{args.run}` at T = {cfg.target:g} ms, against what a user would pick instead\n\n"
              f"`nas.train` on {first['dataset']} ({first['images']['train']:,} training, {first['images']['val']:,} "
              f"validation, {first['images']['test']:,} test images), {args.epochs} epochs, resolution "
              f"{cfg.proxy.resolution}, width x{cfg.proxy.width:g} of each network, {args.seeds} seeds each. Zoo rows: "
              f"width bisected to T. Random rows: draws from the run's space measured within [{args.low:g} T, T]. "
              f"Latency: {cfg.latency_backend}, resolution {cfg.latency_resolution}, batch 1, "
              f"{cfg.latency_threads or 'all'} thread(s), measured side by side at the end (median, interleaved "
              "rounds). Standard error = seed standard deviation / sqrt(seeds).")
    footer = (f"Command: `{command}` ({time.time() - start:.0f} s in this invocation; trainings in `{work}`, "
              f"{sum(r['train_seconds'] for r in rows):.0f} s of training in all).")
    text = markdown(rows, lines, header, footer)
    (work / "summary.json").write_text(json.dumps({"rows": rows, **summary, "target": cfg.target,
                                                   "seeds": args.seeds, "epochs": args.epochs,
                                                   "command": command}, indent=2) + "\n")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
