"""The search winner next to hand-designed networks scaled to the same measured latency.

For each reference family (MobileNetV3-Small/Large, ShuffleNetV2, GhostNet) the width multiplier is
bisected until the network's measured latency (same backend, threads, resolution as the search)
matches the winner's; then every network is proxy-trained with the run's identical proxy settings.

    .venv/bin/python experiments/compare_handdesigned.py runs/NAME [--out experiments/results/compare.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.config import load_config  # noqa: E402
from predictors.cost import count_macs, count_params  # noqa: E402
from predictors.latency import measure_latency  # noqa: E402
from predictors.proxy import train_proxy  # noqa: E402
from searchspace import build, load_genotype, parse_genotype, with_scaling  # noqa: E402

FAMILIES = ("mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0", "ghostnet_100")


def latency(genotype, cfg) -> float:
    g = with_scaling(genotype, resolution=cfg.latency_resolution)
    return measure_latency(g, backend=cfg.latency_backend, threads=cfg.latency_threads, batch=1,
                           resolution=cfg.latency_resolution).median_ms


def match_width(name: str, target_ms: float, cfg, steps: int = 7):
    """Bisect the width multiplier of zoo:NAME so its measured latency meets ``target_ms``."""
    base = load_genotype(f"zoo:{name}")
    lo, hi = 0.25, 2.0
    best = None
    for _ in range(steps):
        mid = (lo + hi) / 2
        g = parse_genotype(with_scaling(base, width=round(mid, 3)).to_dict())
        ms = latency(g, cfg)
        if ms <= target_ms:
            lo, best = mid, (g, ms)
        else:
            hi = mid
    if best is None:
        g = parse_genotype(with_scaling(base, width=lo).to_dict())
        best = (g, latency(g, cfg))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    start = time.time()
    raw = json.loads((args.run / "config.json").read_text())
    raw.pop("name"), raw.pop("resume")
    cfg = load_config(overrides={k: v for k, v in raw.items() if k != "proxy"} |
                      {f"proxy.{k}": v for k, v in raw["proxy"].items()})
    winner = load_genotype(args.run / "best.yaml")
    classes = winner.head["num_classes"]
    target = latency(winner, cfg)
    rows = [("search winner", winner, target)]
    for name in FAMILIES:
        g, ms = match_width(name, target, cfg)
        g.head["num_classes"] = classes
        rows.append((f"{name} x{g.scaling['width']:g}", g, ms))
    lines = [f"Latency-matched comparison for `{args.run}` (target: the winner's {target:.2f} ms; "
             f"{cfg.latency_backend}, resolution {cfg.latency_resolution}, batch 1), identical proxy training "
             f"({cfg.proxy.dataset}, {cfg.proxy.epochs} epochs, {cfg.proxy.subset} images, resolution "
             f"{cfg.proxy.resolution}, proxy width {cfg.proxy.width}).", "",
             "| network | proxy accuracy | latency (ms) | params | MACs |", "|---|---|---|---|---|"]
    for label, g, ms in rows:
        acc = train_proxy(g, cfg.proxy).accuracy
        g224 = with_scaling(g, resolution=cfg.latency_resolution)
        model = build(g224)
        lines.append(f"| {label} | {acc:.4f} | {ms:.2f} | {count_params(model):,} | "
                     f"{count_macs(model, cfg.latency_resolution) / 1e6:.1f}M |")
        print(lines[-1], flush=True)
    lines += ["", f"Command: `.venv/bin/python experiments/compare_handdesigned.py {args.run}` "
                  f"({time.time() - start:.0f} s)."]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
