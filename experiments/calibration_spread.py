"""How much one first-use calibration of the latency table moves from one run to the next.

Repeats the first-use calibration K times in fresh tables (the 17 reference networks of
``predictors.latency.calibration.reference_networks``, their parts profiled, then measured whole in
chunks of 6) and scores each correction on the networks of a ``bench_latency.py --dump`` file
(measured earlier, features from that run's table): median predicted/measured (bias) and the share
within 10%, for the random and zoo networks. Also tries normalising each chunk's whole measurements
by a re-timing of its parts right after (``norm``): whether the parts' speed tracks a slow phase.

    python experiments/bench_latency.py ... --dump /tmp/dump.json
    python experiments/calibration_spread.py /tmp/dump.json 6 [--group 0] [--rounds 10] [--all-rounds] [--passes 2]

``--group 0`` measures all 17 networks in one set of interleaved rounds (``nas`` measures them in sets of
6, as ``measure_many`` does) and ``--all-rounds`` keeps every network to the last round (``nas`` lets a
network stop after 2 rounds once its spread is under 2%), so that every network's rounds span the
whole calibration.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictors.latency.calibration import Correction, reference_networks  # noqa: E402
from predictors.latency.measure import measure_many  # noqa: E402
from predictors.latency.parts import CostTable, network_parts  # noqa: E402
from predictors.latency.table import PART_PROFILE, LatencyTable  # noqa: E402


def score(correction: Correction, rows: list[dict]) -> tuple[float, float]:
    """Median predicted / measured and the share within 10% of the measured median."""
    y = np.array([r["measured_ms"] for r in rows])
    p = np.array([correction.apply(r["features"]) for r in rows])
    return float(np.median(p / y)), float(np.mean(np.abs(p / y - 1) <= 0.1))


def calibrate_once(folder: str, group: int = 6, rounds: int = 5, all_rounds: bool = False,
                   passes: int = 1) -> tuple[list[dict], list[list[float]], list[float], list[float]]:
    """One first-use calibration in a fresh table: features, the whole networks' ms of each pass, the first
    pass normalised by its parts' re-timing, and each chunk's speed. ``group`` networks are measured in one
    set of interleaved rounds (0: all of them), ``rounds`` rounds; ``passes`` passes one after the other."""
    table = LatencyTable(replace(PART_PROFILE, threads=1), Path(folder) / "lut.jsonl",
                         CostTable(Path(folder) / "c.jsonl"))
    nets = reference_networks(224)
    for g in nets:
        table.group_sums(g)
    measured: list[list[float]] = [[] for _ in range(passes)]
    norm, speeds = [], []
    group = group or len(nets)
    config = replace(table.whole_config(), rounds=rounds, min_rounds=rounds if all_rounds else 2)
    for n in range(passes):
        for i in range(0, len(nets), group):
            chunk = nets[i:i + group]
            ms = [m.median_ms for m in measure_many(chunk, config, cache=None, group=group)]
            measured[n] += ms
            if n == 0:
                parts = list({p.key: p for g in chunk for p in network_parts(g)}.values())
                now = table.timer(parts)
                stored = [table.store.get(p.key)[f"{table.memory_format}_ms"] for p in parts]
                speed = sum(t.median_ms for t in now) / sum(stored)
                speeds.append(round(speed, 3))
                norm += [m / speed for m in ms]
    return [table.correction_features(g) for g in nets], measured, norm, speeds


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path)
    parser.add_argument("repeats", type=int)
    parser.add_argument("--group", type=int, default=6, help="networks per set of interleaved rounds (0: all)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the whole measurements")
    parser.add_argument("--all-rounds", action="store_true", help="no network stops before the last round")
    parser.add_argument("--passes", type=int, default=1, help="measure the references this many times in a row; "
                                                              "adds the variants mean (of the passes) and min")
    args = parser.parse_args()
    dump, repeats = json.loads(args.dump.read_text()), args.repeats
    groups = {name: [r for r in dump if r["group"] == name] for name in ("random", "zoo")}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            rows, passes, norm, speeds = calibrate_once(folder, args.group, args.rounds, args.all_rounds, args.passes)
        out = [time.strftime("%H:%M:%S"), f"speeds {speeds}"]
        variants = {"raw": passes[0], "norm": norm}
        if len(passes) > 1:
            variants |= {"mean": list(np.mean(passes, axis=0)), "min": list(np.min(passes, axis=0))}
        for name, measured in variants.items():
            correction = Correction.fit(rows, measured)
            (br, wr), (bz, wz) = score(correction, groups["random"]), score(correction, groups["zoo"])
            out.append(f"{name}: random bias {br:.3f} within10 {wr:.1%} | zoo bias {bz:.3f} within10 {wz:.1%}")
        print(" | ".join(out), flush=True)


if __name__ == "__main__":
    main()
