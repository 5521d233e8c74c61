"""A genotype's blocks as a Markdown table (for experiments/README.md), with params and MACs.

    .venv/bin/python experiments/block_table.py runs/NAME/best.yaml [--resolution 224]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictors.cost import count_macs, count_params  # noqa: E402
from searchspace import build, load_genotype, with_scaling  # noqa: E402

COLUMNS = ("kernel", "expand", "se", "act")


def block_table(genotype) -> list[str]:
    """One row per block entry: stage, type, repeat, out, stride and the usual mbconv-style knobs."""
    lines = ["| stage | type | repeat | out | stride | " + " | ".join(COLUMNS) + " |",
             "|---" * (5 + len(COLUMNS)) + "|"]
    for i, stage in enumerate(genotype.stages):
        for spec in stage:
            knobs = [str(spec.params.get(c, "-")) for c in COLUMNS]
            lines.append(f"| {i} | {spec.type} | {spec.repeat} | {spec.out} | {spec.stride} | " + " | ".join(knobs) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("genotype")
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    genotype = load_genotype(args.genotype)
    model = build(with_scaling(genotype, resolution=args.resolution))
    print("\n".join(block_table(genotype)))
    print(f"\nstem {genotype.stem}, head {genotype.head}; {count_params(model):,} params, "
          f"{count_macs(model, args.resolution, genotype.input['channels']) / 1e6:.1f}M MACs at {args.resolution}")


if __name__ == "__main__":
    main()
