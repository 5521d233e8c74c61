"""How noisy is this machine right now? One genotype, a few fresh builds, timed back to back.

Prints, per pass and per build (seed), the median / minimum of ``--runs`` forward passes at batch 1.
On a quiet machine every cell agrees within a few percent; a spread of 2x means another tenant.

    .venv/bin/python experiments/latency_noise.py runs/NAME/best.yaml [--threads 1] [--passes 2]

With ``--against OTHER`` it instead times the two networks in ``--rounds`` interleaved rounds and
reports the coefficient of variation of each and of their ratio: whether normalising by a reference
network timed alongside removes the machine's noise (it would if the noise were a uniform slowdown).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from searchspace import build_model, load_genotype, with_scaling  # noqa: E402


def time_model(model: torch.nn.Module, x: torch.Tensor, runs: int) -> tuple[float, float]:
    """Median and minimum forward time in ms after 3 warm-up runs."""
    times = []
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def ratio_noise(first, second, x: torch.Tensor, args: argparse.Namespace) -> None:
    """Coefficient of variation of each network's per-round median and of their ratio."""
    models = [build_model(g).eval().to(memory_format=torch.channels_last) for g in (first, second)]
    series: list[list[float]] = [[], []]
    for _ in range(args.rounds):
        for model, values in zip(models, series, strict=True):
            values.append(time_model(model, x, 8)[0])
    ratio = [a / b for a, b in zip(*series, strict=True)]

    def cv(values: list[float]) -> float:
        return statistics.pstdev(values) / statistics.mean(values)

    for label, values in (("first", series[0]), ("second", series[1]), ("ratio", ratio)):
        print(f"{label}: {min(values):.2f}-{max(values):.2f}, coefficient of variation {cv(values):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("genotype")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--builds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--against", help="second genotype: report the noise of the ratio instead")
    parser.add_argument("--rounds", type=int, default=25, help="--against: interleaved rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    genotype = with_scaling(load_genotype(args.genotype), resolution=args.resolution)
    x = torch.randn(1, genotype.input["channels"], args.resolution, args.resolution).contiguous(
        memory_format=torch.channels_last)
    if args.against:
        ratio_noise(genotype, with_scaling(load_genotype(args.against), resolution=args.resolution), x, args)
        return
    medians = []
    for p in range(args.passes):
        cells = []
        for seed in range(args.builds):
            torch.manual_seed(seed)
            model = build_model(genotype).eval().to(memory_format=torch.channels_last)
            median, low = time_model(model, x, args.runs)
            medians.append(median)
            cells.append(f"{median:.1f}/{low:.1f}")
        print(f"pass {p}: median/min ms per build: {'  '.join(cells)}", flush=True)
    print(f"medians range {min(medians):.1f}-{max(medians):.1f} ms (max/min {max(medians) / min(medians):.2f})")


if __name__ == "__main__":
    main()
