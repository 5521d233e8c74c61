"""The HELP benchmark spaces (OFA MobileNetV3 on ImageNet, FBNet on CIFAR-100) as genotypes.

OFA MobileNetV3: stem conv 16 (3x3, stride 2, h-swish); first block MBConv k3 e1 16; then 5 stages
of widths [24, 40, 80, 112, 160], strides [2, 2, 2, 1, 2], activations [relu, relu, hswish, hswish,
hswish], SE [no, yes, no, yes, yes] (OFA's SE: a quarter of the expanded width rounded to 8, ReLU,
h-sigmoid gate); 4 block slots per stage with kernel ``ks`` and expand ``e`` each, depth ``d`` per
stage keeps the first d slots; head 1x1 conv to 960, pool, 1280 (h-swish), classifier; resolution r.

FBNet on CIFAR-100 (HW-NAS-Bench's plan, which HELP's FBNet data uses): stem 3x3 conv 16 stride 1
at 32x32; 22 searchable layers in stages of [1, 4, 4, 4, 4, 4, 1] layers with widths [16, 24, 32,
64, 112, 184, 352] and strides [1, 1, 2, 2, 1, 2, 1]; head 1x1 conv to 1504, pool, classifier (100).
Ops ``k{3,5}_e{1,3,6}`` are MBConv (ReLU, no SE). Differences our MBConv cannot express, carried as
extra features instead: ``*_g2`` ops use grouped (g=2) 1x1 convs + channel shuffle (encoded as the
same-kernel e1 MBConv; feature ``n_g2``), ``skip`` is dropped where shapes allow an identity and
becomes the cheapest MBConv (k3 e1) where the layer changes shape (feature ``n_skip_reduce``);
FBNet's e1 blocks keep a 1x1 expand conv that ours omit (a near-constant offset).
"""

from __future__ import annotations

from searchspace.genotype import FORMAT, Genotype
from searchspace.resolve import parse_genotype

OFA_WIDTHS = (24, 40, 80, 112, 160)
OFA_STRIDES = (2, 2, 2, 1, 2)
OFA_ACTS = ("relu", "relu", "hswish", "hswish", "hswish")
OFA_SE = (False, True, False, True, True)

FBNET_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
FBNET_LAYERS = (1, 4, 4, 4, 4, 4, 1)
FBNET_WIDTHS = (16, 24, 32, 64, 112, 184, 352)
FBNET_STRIDES = (1, 1, 2, 2, 1, 2, 1)


def _mb(out: int, stride: int, kernel: int, expand: float, act: str, se: bool = False) -> dict:
    block = {"type": "mbconv", "out": out, "stride": stride, "kernel": kernel, "expand": float(expand), "act": act}
    if se:
        block.update(se=0.25, se_from="expanded", se_divisor=8, se_act="relu", gate="hsigmoid")
    return block


def ofa_genotype(ks: list[int], e: list[int], d: list[int], r: int) -> Genotype:
    """An OFA MobileNetV3 subnet (20 kernel / expand slots, 5 depths, resolution)."""
    stages = [{"blocks": [_mb(16, 1, 3, 1, "relu")]}]
    for s in range(5):
        blocks = []
        for j in range(d[s]):
            slot = 4 * s + j
            blocks.append(_mb(OFA_WIDTHS[s], OFA_STRIDES[s] if j == 0 else 1, ks[slot], e[slot], OFA_ACTS[s],
                              OFA_SE[s]))
        stages.append({"blocks": blocks})
    return parse_genotype({
        "format": FORMAT, "name": "ofa_mbv3",
        "input": {"channels": 3, "resolution": int(r)},
        "stem": {"type": "conv", "out": 16, "kernel": 3, "stride": 2, "act": "hswish"},
        "stages": stages,
        "head": {"conv": 960, "hidden": 1280, "act": "hswish", "dropout": 0.1, "num_classes": 1000},
    })


def fbnet_genotype(ops: list[str]) -> tuple[Genotype, dict[str, float]]:
    """An FBNet CIFAR-100 architecture (22 op names) and its extra features."""
    if len(ops) != sum(FBNET_LAYERS):
        raise ValueError(f"expected {sum(FBNET_LAYERS)} ops, got {len(ops)}")
    stages, layer, channels = [], 0, 16
    n_g2 = n_skip_reduce = 0
    for s, n in enumerate(FBNET_LAYERS):
        blocks = []
        for j in range(n):
            op = ops[layer]
            layer += 1
            out, stride = FBNET_WIDTHS[s], FBNET_STRIDES[s] if j == 0 else 1
            if op == "skip":
                if stride == 1 and channels == out:
                    continue
                n_skip_reduce += 1
                blocks.append(_mb(out, stride, 3, 1, "relu"))
            else:
                kernel, expand = int(op[1]), int(op.split("_")[1][1:])
                n_g2 += op.endswith("_g2")
                blocks.append(_mb(out, stride, kernel, expand, "relu"))
            channels = out
        if blocks:
            stages.append({"blocks": blocks})
    genotype = parse_genotype({
        "format": FORMAT, "name": "fbnet_cifar100",
        "input": {"channels": 3, "resolution": 32},
        "stem": {"type": "conv", "out": 16, "kernel": 3, "stride": 1, "act": "relu"},
        "stages": stages,
        "head": {"conv": 1504, "act": "relu", "num_classes": 100},
    })
    return genotype, {"n_g2": float(n_g2), "n_skip_reduce": float(n_skip_reduce)}
