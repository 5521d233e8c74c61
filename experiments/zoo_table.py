"""Write docs/zoo.md: every zoo genotype's params and MACs next to the torchvision / timm reference.

    .venv/bin/python experiments/zoo_table.py > docs/zoo.md
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictors.cost import count_macs, count_params  # noqa: E402
from searchspace import build, load_genotype, zoo_names  # noqa: E402
from tests.test_zoo_counts import REFERENCE  # noqa: E402

TIMM = {"ghostnet_100", "resnest14d", "resnest26d", "resnest50d", "vovnet39a", "vovnet57a", "ese_vovnet19b_dw",
        "ese_vovnet39b", "ese_vovnet57b"}


def main() -> None:
    start = time.time()
    print("# Reference zoo\n")
    print("Each genotype in `searchspace/zoo/` rebuilt with `nas.build_model` and counted with")
    print("`predictors.cost` (MACs = torch.utils.flop_counter FLOPs / 2, one image at the genotype's")
    print("resolution), next to the reference model of the same name (torchvision 0.29.2 or timm 1.0.31,")
    print("measured with `experiments/reference_counts.py`).\n")
    print("| name | source | resolution | params (ours) | params (reference) | MACs (ours) | MACs (reference) | MACs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for name in zoo_names():
        genotype = load_genotype(f"zoo:{name}")
        model = build(genotype)
        params, macs = count_params(model), count_macs(model, genotype.resolution)
        ref_params, ref_macs = REFERENCE[name]
        mark = "exact" if params == ref_params else f"off by {params - ref_params:+,}"
        print(f"| {name} | {'timm' if name in TIMM else 'torchvision'} | {genotype.resolution} | {params:,} | "
              f"{ref_params:,} ({mark}) | {macs / 1e6:,.1f}M | {ref_macs / 1e6:,.1f}M | "
              f"{100 * (macs / ref_macs - 1):+.2f}% |")
    print(f"\nProduced by `.venv/bin/python experiments/zoo_table.py > docs/zoo.md` in {time.time() - start:.0f} s.")


if __name__ == "__main__":
    main()
