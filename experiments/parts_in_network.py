"""Each part of a network timed inside the network (forward hooks) and alone (as the lookup table
profiles it), with the page faults of one forward: where a table sum and a whole network part ways.

    python experiments/parts_in_network.py zoo:mobilenet_v2 [--default-allocator] [--threads 1] [--cold]

``--cold`` also times each part alone after evicting the caches (a 64 MB buffer written before every
repetition), as a part meets its weights and input inside a network whose other parts ran before it.

``--default-allocator`` leaves glibc's adaptive thresholds as they are (what ``nas`` did before
``predictors.latency.allocator.steady_allocator``); by default the thresholds are fixed as ``nas`` fixes them.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictors.latency.allocator import steady_allocator  # noqa: E402
from predictors.latency.measure import measure_modules  # noqa: E402
from predictors.latency.parts import network_parts  # noqa: E402
from predictors.latency.table import PART_PROFILE  # noqa: E402
from searchspace import build_model, load_genotype, with_scaling  # noqa: E402


def _in_network(model: torch.nn.Module, x: torch.Tensor, reps: int) -> tuple[float, list[float], float]:
    """Median whole-forward ms, each top-level part's median ms inside it, page faults per forward."""
    parts = [model.stem, *[block for stage in model.stages for block in stage], model.head]
    times: list[list[float]] = [[] for _ in parts]
    start = [0.0]
    for i, part in enumerate(parts):
        part.register_forward_pre_hook(lambda *_: start.__setitem__(0, time.perf_counter()))
        part.register_forward_hook(lambda *_, i=i: times[i].append((time.perf_counter() - start[0]) * 1e3))
    whole = []
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        for t in times:
            t.clear()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(reps):
            begin = time.perf_counter()
            model(x)
            whole.append((time.perf_counter() - begin) * 1e3)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / reps
    return statistics.median(whole), [statistics.median(t) for t in times], faults


def _alone(parts, reps: int, flush_mb: int = 0) -> list[float]:
    """Median ms of each part alone in a plain loop; ``flush_mb``: a buffer of that size written before every
    repetition, which evicts the part's weights and input from the caches (0: hot, as the table times)."""
    buffer = torch.zeros(flush_mb * 2**20 // 4) if flush_mb else None
    medians = []
    with torch.inference_mode():
        for part in parts:
            module = part.build().eval().to(memory_format=torch.channels_last)
            x = torch.randn(1, *part.in_shape).contiguous(memory_format=torch.channels_last)
            for _ in range(3):
                module(x)
            times = []
            for _ in range(reps):
                if buffer is not None:
                    buffer.add_(1.0)
                begin = time.perf_counter()
                module(x)
                times.append((time.perf_counter() - begin) * 1e3)
            medians.append(statistics.median(times))
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("genotype", help="a genotype file or zoo:NAME")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--default-allocator", action="store_true", help="leave glibc's thresholds adaptive")
    parser.add_argument("--cold", action="store_true", help="also time each part alone with the caches evicted")
    args = parser.parse_args()
    if not args.default_allocator:
        steady_allocator()
    torch.set_num_threads(args.threads)
    genotype = with_scaling(load_genotype(args.genotype), resolution=args.resolution)
    model = build_model(genotype, resolution=args.resolution).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, genotype.input["channels"], args.resolution, args.resolution)
    whole, inside, faults = _in_network(model, x.contiguous(memory_format=torch.channels_last), args.reps)
    parts = network_parts(genotype, args.resolution)
    alone = measure_modules([(p.build(), (1, *p.in_shape)) for p in parts],
                            replace(PART_PROFILE, threads=args.threads))
    allocator = "glibc default (adaptive)" if args.default_allocator else "thresholds fixed"
    print(f"{args.genotype} at {args.resolution}, {args.threads} thread(s), allocator {allocator}: "
          f"whole {whole:.2f} ms ({faults:.0f} page faults per forward); parts inside {sum(inside):.2f} ms, "
          f"alone {sum(t.median_ms for t in alone):.2f} ms")
    if not args.cold:
        print("| part | input | inside (ms) | alone (ms) | inside / alone |\n|---|---|---|---|---|")
        for part, ms, timing in zip(parts, inside, alone, strict=True):
            print(f"| {part.group} | {'x'.join(map(str, part.in_shape))} | {ms:.3f} | {timing.median_ms:.3f} | "
                  f"{ms / timing.median_ms:.2f} |")
        return 0
    hot, cold = _alone(parts, args.reps), _alone(parts, args.reps, flush_mb=64)
    print(f"alone in a plain loop: hot {sum(hot):.2f} ms, caches evicted {sum(cold):.2f} ms")
    print("| part | input | inside (ms) | alone (ms) | alone, hot loop (ms) | alone, caches evicted (ms) | "
          "inside / alone | inside / evicted |\n|---|---|---|---|---|---|---|---|")
    for part, ms, timing, h, c in zip(parts, inside, alone, hot, cold, strict=True):
        print(f"| {part.group} | {'x'.join(map(str, part.in_shape))} | {ms:.3f} | {timing.median_ms:.3f} | {h:.3f} | "
              f"{c:.3f} | {ms / timing.median_ms:.2f} | {ms / c:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
