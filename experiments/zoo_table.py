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
TIMM |= {"seresnet50", "mobilenetv1_100", "legacy_xception"}  # issue 14, part 2
TIMM |= {"cspresnet50", "cspresnext50", "cspdarknet53", "darknet53", "resnetv2_50"}  # issue 14, part 1
TIMM |= {"vit_tiny_patch16_224", "vit_small_patch16_224"}  # issue 26, part B
TIMM |= {"inception_v4", "inception_resnet_v2"}  # issue 26, part A
# networks in a common form with no one reference model: counted by hand (the MACs reference is ours)
COMMON = {"lenet5"}
# networks whose reference is their authors' own code (not in torchvision or timm)
OFFICIAL = {"resnet50_ibn_a": "IBN-Net", "oct_resnet50": "OctConv", "espnetv2": "ESPNetv2"}
# the authors' code counted as it is, where our genotype leaves a part of it out (REFERENCE has our count)
AUTHORS = {"espnetv2": (3498136, 286086228)}
# networks with no torchvision / timm model: the paper's MACs (multiply-adds) instead of a reference count
PAPER = {"shufflenet_v1_g3": 140e6}


def source(name: str) -> str:
    if name in OFFICIAL:
        return OFFICIAL[name]
    if name in COMMON:
        return "common form"
    return "paper" if name in PAPER else "timm" if name in TIMM else "torchvision"


def row(name: str) -> str:
    """The table row of one zoo network."""
    genotype = load_genotype(f"zoo:{name}")
    model = build(genotype)
    params, macs = count_params(model), count_macs(model, genotype.resolution, genotype.input["channels"])
    ref_params, ref_macs = AUTHORS.get(name, REFERENCE[name])
    mark = "exact" if params == ref_params else f"off by {params - ref_params:+,}"
    ref_params_text = f"{ref_params:,} ({mark})"
    if name in PAPER:
        ref_params_text, ref_macs = "none (no reference model)", PAPER[name]
    return (f"| {name} | {source(name)} | {genotype.resolution} | {params:,} | {ref_params_text} | "
            f"{macs / 1e6:,.1f}M | {ref_macs / 1e6:,.1f}M | {100 * (macs / ref_macs - 1):+.2f}% |")


def main() -> None:
    start = time.time()
    print("# Reference zoo\n")
    print("Each genotype in `searchspace/zoo/` rebuilt with `nas.build_model` and counted with")
    print("`predictors.cost` (MACs = torch.utils.flop_counter FLOPs / 2, one image at the genotype's")
    print("resolution), next to the reference model of the same name (torchvision 0.28 / 0.29 or timm 1.0.31,")
    print("measured with `experiments/reference_counts.py`).\n")
    print("| name | source | resolution | params (ours) | params (reference) | MACs (ours) | MACs (reference) | MACs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for name in zoo_names():
        print(row(name))
    print("\nshufflenet_v1_g3 is ShuffleNetV1 1x, g = 3, built from the paper's Table 1 (Zhang et al. 2018; stage")
    print("outputs 240/480/960, repeats 4/8/4, bottleneck out / 4, the first 1x1 after the stem not grouped): no")
    print("torchvision or timm model exists, so its row compares with the paper's 140 MFLOPs (multiply-adds); the")
    print("authors' code (megvii ShuffleNet-Series) reports 138M and 1.9M parameters, without the classifier bias")
    print("ours has (1,000 parameters). tests/test_blocks_classic.py checks 0.5x-2.0x and g = 8 against that table.")
    print("\nresnet50_ibn_a is the official XingangPan/IBN-Net model (25.55M parameters in its README): IBN-a in the")
    print("first three stages, whose instance norms have the parameters of the batch norms they replace, so it counts")
    print("as ResNet-50, and norms are not multiply-adds. The ViTs' MACs (ours and timm's, both from torch's flop")
    print("counter on the CPU) leave out the attention products q k^T and attn v (178.8M in vit_tiny, 357.7M in")
    print("vit_small): the counter has no formula for CPU scaled-dot-product attention.")
    print("\nThe issue-26 Inception networks and AlexNet compare with the MACs the issue gives (to 0.1M): torchvision")
    print("googlenet and inception_v3 with aux_logits=False, timm inception_v4 and inception_resnet_v2. lenet5 is")
    print("LeNet-5's common form (1x32x32 input, full C3, max pooling, C5 as a 5x5 conv, 10 classes), counted by hand.")
    print("\noct_resnet50 is OctResNet-50 at alpha 0.25 as the authors' facebookresearch/OctConv builds it")
    print("(resnet50_v1b(ratio=0.25): octave convs in stages 1-3, the last stage merged back and plain); its")
    print("reference row is that network counted the same way (d-li14/octconv.pytorch's OctResNet-50 with its")
    print("hard-coded alpha 0.5 set to 0.25; loaded with its weights, ours gives the same output). An octave conv")
    print("has the parameters of the conv it replaces, so it counts as ResNet-50: 25,557,032 (ResNet-50's 25.6M;")
    print("d-li14's README: 25.557M). Its 3,103.5M MACs are alpha 0.25's; the ~2.4 GFLOPs quoted for Oct-ResNet-50 are")
    print("alpha 0.5's: the same genotype at alpha 0.5 has 2,367.1M, d-li14's published 2.367G exactly.")
    print("\nespnetv2 is ESPNetv2 at s = 2.0 as sacmehta/ESPNetv2's imagenet EESPNet, whose README gives 3.49M")
    print("parameters and 284.8 MFLOPs: its 3,498,136 parameters, and its multiply-adds without the classifier")
    print("(286,086,228 - 1,280,000). Ours leaves out the input reinforcement of the first three down-samplers")
    print("(the image average-pooled to the map, a 3x3 conv-BN-PReLU and a 1x1 conv-BN to the width, added to the")
    print("output: 4,750 parameters, 2.44M MACs), which needs the network input inside a block, and 6,202")
    print("parameters the reference builds but never uses (the level-5 down-sampler's reinforcement, 5,210, and")
    print("each down-sampler EESP's own PReLU, 992); with its reinforcement off and its weights loaded, ours gives")
    print("the same output. Against the README: 3,487,184 parameters (-0.08% of 3.49M) and 282.4M MACs without the")
    print("classifier (-0.85% of 284.8M). s = 2.0 matches best: at s = 1.0 the same omission is -1.6% of 85.72M.")
    print(f"\nProduced by `.venv/bin/python experiments/zoo_table.py > docs/zoo.md` in {time.time() - start:.0f} s.")


if __name__ == "__main__":
    main()
