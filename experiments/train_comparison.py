"""The search winner against width-matched hand-designed networks, each trained for real with ``nas.train``.

For a search run (``runs/NAME``: ``best.yaml`` and ``config.json``), this

1. scales each hand-designed family (``--match``, default MobileNetV3-Small/Large, ShuffleNetV2, GhostNet)
   to the winner's latency measured now (``compare_handdesigned.match_width``; kept in
   ``WORK/networks.yaml`` so that a resumed comparison trains the same networks);
2. trains every network with ``nas.train`` for ``--seeds`` seeds at the search's proxy resolution and
   width on all training images (``--subset`` for fewer) for ``--epochs`` epochs, each run in
   ``WORK/<network>/seed<S>/`` (a finished run is read back, a killed one is resumed from its last epoch);
3. proxy-trains every network with the search's proxy recipe for the same seeds (cached per seed);
4. measures every network's latency side by side at the search's latency resolution (careful, interleaved
   rounds, no cache), counts params and MACs there, and computes the search's reward on the trained accuracy;
5. writes the table, the Spearman rank correlation between proxy and trained accuracy over the networks,
   and whether the winner is within the target and at least 1.0 point above the best baseline with the gap
   larger than twice its standard error (``--out`` markdown; ``WORK/summary.json``).

    .venv/bin/python experiments/train_comparison.py runs/NAME --seeds 3 --epochs 6 \\
        --out experiments/results/train_comparison.md
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
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from compare_handdesigned import MATCHED, latency, match_width, names, run_config  # noqa: E402

import nas  # noqa: E402
from nas.search.reward import reward_for  # noqa: E402
from predictors.cost import count_macs, count_params  # noqa: E402
from predictors.latency.conditions import CAREFUL  # noqa: E402
from predictors.latency.measure import measure_many  # noqa: E402
from predictors.training.proxy import train_proxy  # noqa: E402
from predictors.training.recipe import data_keys  # noqa: E402
from searchspace import Genotype, build, load_genotype, parse_genotype, with_scaling  # noqa: E402


@dataclass
class Network:
    label: str
    genotype: Genotype

    @property
    def slug(self) -> str:
        return self.label.replace(" ", "_")


def networks(run: Path, cfg, match: list[str], work: Path) -> list[Network]:
    """The winner and the width-matched baselines, chosen once per WORK folder."""
    path = work / "networks.yaml"
    if path.is_file():
        saved = yaml.safe_load(path.read_text())
        return [Network(label, parse_genotype(g)) for label, g in saved.items()]
    winner = load_genotype(run / "best.yaml")
    target = latency(winner, cfg)
    rows = [Network("winner", winner)]
    for name in match:
        g, _ = match_width(name, winner.head["num_classes"], target, cfg)
        rows.append(Network(f"{name} x{g.scaling['width']:g}", g))
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({r.label: r.genotype.to_dict() for r in rows}, sort_keys=False))
    return rows


def trained(net: Network, cfg, args, data: dict, seed: int, work: Path) -> dict:
    """result.json of ``nas.train`` for one seed (read back when that training already finished)."""
    out = work / net.slug / f"seed{seed}"
    if (out / "result.json").is_file():
        return json.loads((out / "result.json").read_text())
    progress = None if args.quiet else nas_progress()
    try:
        result = nas.train(net.genotype, out=str(out), resume=out.exists(), seed=seed, epochs=args.epochs,
                           resolution=cfg.proxy.resolution, width=cfg.proxy.width, subset=args.subset,
                           threads=cfg.proxy.threads, progress=progress, **data)
    finally:
        if progress is not None:
            progress.close()
    return result.to_dict()


def nas_progress():
    from nas.training.progress import TrainProgress

    return TrainProgress()


def proxy_accuracy(net: Network, cfg, data: dict, seed: int, work: Path) -> float:
    """The search's proxy accuracy of one seed (cached in WORK/<network>/proxy_seed<S>.json)."""
    path = work / net.slug / f"proxy_seed{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())["accuracy"]
    accuracy = train_proxy(net.genotype, dataclasses.replace(cfg.proxy, seed=seed, **data)).accuracy
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"accuracy": accuracy}))
    return accuracy


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho; NaN for fewer than 3 networks or a constant column (no ranking to compare)."""
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) == 1 or len(set(y)) == 1:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _rho_text(rho: float) -> str:
    return "undefined (fewer than 3 networks, or one accuracy column is constant)" if math.isnan(rho) else f"{rho:.3f}"


def verdict(rows: list[dict], cfg, seeds: int) -> list[str]:
    """The issue's goal, checked on the numbers (no tuning): within the target, >= 1.0 point, gap > 2 SE."""
    winner, baselines = rows[0], rows[1:]
    cost = winner["latency_ms"] if cfg.objective == "latency" else winner["macs"]
    lines = [f"- Winner within the target: {'yes' if cost <= cfg.target else 'no'} ({cost:.4g} vs {cfg.target:g} "
             f"{'ms, measured side by side' if cfg.objective == 'latency' else 'MACs'})."]
    if not baselines:
        return lines
    best = max(baselines, key=lambda r: r["test_mean"])
    gap = winner["test_mean"] - best["test_mean"]
    se = math.sqrt((winner["test_sd"] ** 2 + best["test_sd"] ** 2) / seeds) if seeds > 1 else float("nan")
    lines.append(f"- Gap to the best baseline ({best['label']}): {100 * gap:+.2f} points, standard error "
                 f"{100 * se:.2f} points ({seeds} seeds each): at least 1.0 point: {'yes' if gap >= 0.01 else 'no'}; "
                 f"larger than twice its standard error: {'yes' if seeds > 1 and gap > 2 * se else 'no'}.")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="search run folder (best.yaml, config.json)")
    parser.add_argument("--match", default=MATCHED, help="zoo names scaled to the winner's latency ('' for none)")
    parser.add_argument("--seeds", type=int, default=3, help="trainings per network (seeds 0..N-1)")
    parser.add_argument("--epochs", type=int, default=6, help="nas train epochs")
    parser.add_argument("--subset", type=int, help="training images per run (default: all)")
    parser.add_argument("--data", help="data set or ImageFolder folder for both trainings (default: the search's)")
    parser.add_argument("--work", type=Path, help="folder of the trainings (default: runs/train_comparison/RUN)")
    parser.add_argument("--out", type=Path, help="markdown table")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    start = time.time()
    cfg = run_config(args.run)
    data = data_keys(args.data) if args.data else {"dataset": cfg.proxy.dataset, "data_dir": cfg.proxy.data_dir}
    work = args.work or Path("runs") / "train_comparison" / args.run.name
    nets = networks(args.run, cfg, names(args.match), work)
    seeds = range(args.seeds)
    results = {n.label: [trained(n, cfg, args, data, s, work) for s in seeds] for n in nets}
    proxies = {n.label: [proxy_accuracy(n, cfg, data, s, work) for s in seeds] for n in nets}
    measured = measure_many([with_scaling(n.genotype, resolution=cfg.latency_resolution) for n in nets],
                            dataclasses.replace(CAREFUL, backend=cfg.latency_backend, threads=cfg.latency_threads,
                                                resolution=cfg.latency_resolution), cache=None)
    reward = reward_for(cfg)
    rows = []
    for n, m in zip(nets, measured, strict=True):
        model = build(with_scaling(n.genotype, resolution=cfg.latency_resolution))
        test_mean, test_sd = mean_sd([r["test_accuracy"] for r in results[n.label]])
        macs = count_macs(model, cfg.latency_resolution, n.genotype.input["channels"])
        cost = m.median_ms if cfg.objective == "latency" else macs
        rows.append({"label": n.label, "test_mean": test_mean, "test_sd": test_sd,
                     "tests": [r["test_accuracy"] for r in results[n.label]],
                     "proxy_mean": statistics.mean(proxies[n.label]), "proxies": proxies[n.label],
                     "params": count_params(model), "macs": macs, "latency_ms": m.median_ms,
                     "latency_iqr_ms": m.iqr_ms, "reward": reward(test_mean, cost),
                     "train_seconds": sum(r["train_seconds"] for r in results[n.label])})
    rho = spearman([r["proxy_mean"] for r in rows], [r["test_mean"] for r in rows])
    first = results[nets[0].label][0]
    lines = [f"Trained comparison for `{args.run}`: `nas.train` on {first['dataset']} ({first['images']['train']:,} "
             f"training, {first['images']['val']:,} validation, {first['images']['test']:,} test images), "
             f"{args.epochs} epochs, resolution {cfg.proxy.resolution}, width x{cfg.proxy.width:g} of each network, "
             f"{args.seeds} seed(s) each. Proxy accuracy: the search's recipe ({cfg.proxy.epochs} epochs, "
             f"{cfg.proxy.subset} images), same seeds. Latency: {cfg.latency_backend}, resolution "
             f"{cfg.latency_resolution}, batch 1, measured side by side in this run (median, interleaved rounds). "
             f"Reward: {cfg.reward} on {cfg.objective} with target {cfg.target:g}, on the trained accuracy.", "",
             "| network | test accuracy | proxy accuracy | params | MACs | latency (ms) | reward |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        spread = f" +- {r['test_sd']:.4f}" if args.seeds > 1 else ""
        lines.append(f"| {r['label']} | {r['test_mean']:.4f}{spread} | {r['proxy_mean']:.4f} | {r['params']:,} | "
                     f"{r['macs'] / 1e6:.1f}M | {r['latency_ms']:.2f} | {r['reward']:.4f} |")
    lines += ["", f"Spearman rank correlation, proxy vs trained accuracy over the {len(rows)} networks (means of "
                  f"{args.seeds} seed(s)): {_rho_text(rho)}.", "", *verdict(rows, cfg, args.seeds), "",
              f"Command: `{command}` ({time.time() - start:.0f} s in this invocation; trainings in `{work}`)."]
    text = "\n".join(lines) + "\n"
    (work / "summary.json").write_text(json.dumps({"rows": rows, "spearman": rho, "seeds": args.seeds,
                                                   "epochs": args.epochs, "command": command}, indent=2) + "\n")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
