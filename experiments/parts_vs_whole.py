"""Parts timed inside a network against the same network measured right after, round after round.

Each round times every network part by part inside it (``predictors.latency.in_network``: a hooked forward
alternating with a plain one) and then measures it whole with ``nas latency``'s default protocol. The plain
forwards interleaved with the hooked ones say whether the parts add up to the whole; the measurement taken
seconds later says how far this machine moves between two readings.

    python experiments/parts_vs_whole.py --threads 2 [--rounds 3] [--zoo mobilenet_v2,ghostnet_100,...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictors.latency.conditions import MeasureConfig  # noqa: E402
from predictors.latency.in_network import time_genotype_parts  # noqa: E402
from predictors.latency.measure import measure_many  # noqa: E402
from predictors.latency.table import PART_PROFILE  # noqa: E402
from searchspace import load_genotype  # noqa: E402

DEFAULT_ZOO = "mobilenet_v2,ghostnet_100,efficientnet_b0,mnasnet1_0,resnet18"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--zoo", default=DEFAULT_ZOO, help="zoo networks, comma-separated")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # noisy measurements are the point here
    names = args.zoo.split(",")
    networks = [load_genotype(f"zoo:{name}") for name in names]
    parts_config, whole_config = replace(PART_PROFILE, threads=args.threads), MeasureConfig(threads=args.threads)
    ratios: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    print("| round | network | parts (ms) | plain forwards between (ms) | measured after (ms) | measured / parts |")
    print("|---|---|---|---|---|---|")
    for round_index in range(args.rounds):
        for name, genotype in zip(names, networks, strict=True):
            timing = time_genotype_parts(genotype, parts_config)
            parts = sum(t.median_ms for t in timing.parts)
            measured = measure_many([genotype], whole_config, cache=None)[0].median_ms
            ratios[name].append((timing.whole.median_ms / parts, measured / parts))
            print(f"| {round_index + 1} | {name} | {parts:.2f} | {timing.whole.median_ms:.2f} | {measured:.2f} | "
                  f"{measured / parts:.3f} |", flush=True)
    print("\n| network | plain forwards / parts (median) | measured / parts (median) |\n|---|---|---|")
    for name in names:
        between = statistics.median(r[0] for r in ratios[name])
        after = statistics.median(r[1] for r in ratios[name])
        print(f"| {name} | {between:.3f} | {after:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
