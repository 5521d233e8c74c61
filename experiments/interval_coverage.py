"""How often a measurement falls inside the latency table's 80% interval, scored offline on benchmark dumps.

For each ``bench_latency.py --dump`` file: the correction is fitted as on first use (the table's first
``--references`` observed networks, the calibration) and, for the zoo, also on every observed network (the
calibration plus the 200 random networks the benchmark added), with the interval of the current code
(:func:`predictors.latency.calibration._half_width`); printed: the interval's half-width, the median log
error (the calibration's shared error) and the share of measured networks inside the interval.

    python experiments/interval_coverage.py /tmp/lat/dump_v5.json /tmp/lat/dump_v6.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictors.latency.calibration import Correction  # noqa: E402


def _score(correction: Correction, rows: list[dict]) -> tuple[float, float]:
    """Median log error and the share of ``rows`` whose measurement lies inside the interval."""
    errors = np.array([math.log(correction.apply(r["features"]) / r["measured_ms"]) for r in rows])
    return float(np.median(errors)), float(np.mean((errors >= correction.low) & (errors <= correction.high)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dumps", nargs="+", help="bench_latency.py --dump files")
    parser.add_argument("--references", type=int, default=17, help="calibration networks (the first observed)")
    args = parser.parse_args()
    print("| dump | fitted on | networks | half-width | median log error | inside the interval |")
    print("|---|---|---|---|---|---|")
    for path in args.dumps:
        records = json.loads(Path(path).read_text())
        groups: dict[str, list[dict]] = {}
        for record in records:
            groups.setdefault(record["group"], []).append(record)
        observed = groups["observed"]
        fits = {"calibration": observed[:args.references], "all observed": observed}
        for fit_name, train in fits.items():
            correction = Correction.fit([r["features"] for r in train], [r["measured_ms"] for r in train])
            for group in ("random", "zoo"):
                if group not in groups or (fit_name == "all observed" and group == "random"):
                    continue  # the random networks are in that fit
                bias, inside = _score(correction, groups[group])
                print(f"| {Path(path).name} | {fit_name} ({len(train)}) | {group} ({len(groups[group])}) | "
                      f"{correction.high:.3f} | {bias:+.3f} | {inside:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
