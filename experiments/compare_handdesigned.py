"""The search winner next to hand-designed networks, trained with the run's identical proxy budget.

Two kinds of rows besides the winner:

* ``--match``: reference families (default MobileNetV3-Small/Large, ShuffleNetV2, GhostNet) whose
  width multiplier is bisected until the measured latency (same backend, threads and resolution as
  the search) meets the winner's;
* ``--as-is``: zoo networks at their own size (e.g. ``mobilenet_v3_large,efficientnet_b0``), to see
  where they land under the same proxy budget and reward.

Every network is proxy-trained with the run's proxy settings, once per seed (``--seeds``: the seed
changes the training subset, initialisation and order), and reported as mean +- standard deviation.
The cost column is the run's objective (measured latency or MACs) and the reward is the run's.

    .venv/bin/python experiments/compare_handdesigned.py runs/NAME --seeds 3 [--out experiments/results/compare.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.config import load_config  # noqa: E402
from nas.search.reward import reward_for  # noqa: E402
from predictors.cost import count_macs, count_params  # noqa: E402
from predictors.latency.measure import measure_latency  # noqa: E402
from predictors.training.proxy import train_proxy  # noqa: E402
from searchspace import build, load_genotype, parse_genotype, with_scaling  # noqa: E402

MATCHED = "mobilenet_v3_small,mobilenet_v3_large,shufflenet_v2_x1_0,ghostnet_100"


def latency(genotype, cfg) -> float:
    """Measured now, never from the cache: every row of the table is measured side by side in this run."""
    g = with_scaling(genotype, resolution=cfg.latency_resolution)
    return measure_latency(g, backend=cfg.latency_backend, threads=cfg.latency_threads, batch=1,
                           resolution=cfg.latency_resolution, cache=None).median_ms


def zoo(name: str, classes: int):
    """zoo:NAME with the winner's number of classes (latency and training both see that head)."""
    g = load_genotype(f"zoo:{name}")
    return parse_genotype(dataclasses.replace(g, head={**g.head, "num_classes": classes}).to_dict())


def match_width(name: str, classes: int, target_ms: float, cfg, steps: int = 7):
    """Bisect the width multiplier of zoo:NAME so its measured latency meets ``target_ms``."""
    base = zoo(name, classes)
    lo, hi = 0.25, 2.0
    best = None
    for _ in range(steps):
        mid = (lo + hi) / 2
        g = with_scaling(base, width=round(mid, 3))
        ms = latency(g, cfg)
        if ms <= target_ms:
            lo, best = mid, (g, ms)
        else:
            hi = mid
    if best is None:
        g = with_scaling(base, width=lo)
        best = (g, latency(g, cfg))
    return best


def run_config(run: Path):
    raw = json.loads((run / "config.json").read_text())
    raw.pop("name"), raw.pop("resume")
    return load_config(overrides={k: v for k, v in raw.items() if k != "proxy"} |
                       {f"proxy.{k}": v for k, v in raw["proxy"].items()})


def names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--match", default=MATCHED, help="zoo names scaled to the winner's latency ('' for none)")
    parser.add_argument("--as-is", default="", help="zoo names trained at their own size")
    parser.add_argument("--seeds", type=int, default=1, help="proxy trainings per network (seeds 0..N-1)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    start = time.time()
    cfg = run_config(args.run)
    reward = reward_for(cfg)
    winner = load_genotype(args.run / "best.yaml")
    classes = winner.head["num_classes"]
    target = latency(winner, cfg)
    rows = [("search winner", winner, target)]
    for name in names(args.match):
        g, ms = match_width(name, classes, target, cfg)
        rows.append((f"{name} x{g.scaling['width']:g}", g, ms))
    for name in names(args.as_is):
        g = zoo(name, classes)
        rows.append((name, g, latency(g, cfg)))
    lines = [f"Comparison for `{args.run}` (winner's latency {target:.2f} ms; {cfg.latency_backend}, "
             f"resolution {cfg.latency_resolution}, batch 1, {cfg.latency_threads or 'all'} thread(s)), identical "
             f"proxy training ({cfg.proxy.dataset}, {cfg.proxy.epochs} epochs, {cfg.proxy.subset} images, resolution "
             f"{cfg.proxy.resolution}, proxy width {cfg.proxy.width}), {args.seeds} seed(s) each; reward "
             f"{cfg.reward} on {cfg.objective} with target {cfg.target:g}.", "",
             "| network | proxy accuracy | latency (ms) | params | MACs | reward |", "|---|---|---|---|---|---|"]
    for label, g, ms in rows:
        accs = [train_proxy(g, dataclasses.replace(cfg.proxy, seed=s)).accuracy for s in range(args.seeds)]
        acc = statistics.mean(accs)
        spread = f" +- {statistics.stdev(accs):.4f}" if len(accs) > 1 else ""
        model = build(with_scaling(g, resolution=cfg.latency_resolution))
        macs = count_macs(model, cfg.latency_resolution, g.input["channels"])
        cost = ms if cfg.objective == "latency" else macs
        lines.append(f"| {label} | {acc:.4f}{spread} | {ms:.2f} | {count_params(model):,} | {macs / 1e6:.1f}M | "
                     f"{reward(acc, cost):.4f} |")
        print(lines[-1], flush=True)
    lines += ["", f"Command: `{command}` ({time.time() - start:.0f} s)."]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
