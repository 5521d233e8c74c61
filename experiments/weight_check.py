"""Copy a reference network's weights into ours, in order, and compare the outputs (issue 14).

Every tensor of the torchvision / timm model (random weights, random BatchNorm statistics) is
copied in state-dict order into the genotype's network; both run in eval mode on the same random
images and the largest output difference is printed. Needs the reference packages, as
``experiments/reference_counts.py``:

    PYTHONPATH=/tmp/refpkgs .venv/bin/python experiments/weight_check.py [NAME ...]
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))

import timm  # noqa: E402
import torch  # noqa: E402
import torchvision.models as tvm  # noqa: E402

from searchspace import build, load_genotype  # noqa: E402
from tests.classic_members import MEMBERS as CLASSIC_MEMBERS  # noqa: E402
from tests.csp_dense_members import MEMBERS as CSP_DENSE_MEMBERS  # noqa: E402

MEMBERS = {**CLASSIC_MEMBERS, **CSP_DENSE_MEMBERS}
ZOO = ["seresnet50", "wide_resnet50_2", "efficientnet_v2_s", "mobilenetv1_100", "legacy_xception", "vgg16_bn",
       "squeezenet1_1"]
ZOO += ["densenet121", "densenet169", "cspresnet50", "cspresnext50", "cspdarknet53", "darknet53", "resnetv2_50"]
TIMM = {"seresnet50", "mobilenetv1_100", "legacy_xception", "seresnet18", "seresnet34", "mobilenetv1_125"}
TIMM |= {"cspresnet50", "cspresnext50", "cspdarknet53", "darknet53", "resnetv2_50", "cspresnet50d", "cspresnet50w",
         "darknet17", "darknet21", "resnetv2_18", "resnetv2_34", "resnetv2_101"}


def reference_order(name: str, keys: list[str]) -> list[str]:
    """The reference's keys in our build order (timm's legacy Xception registers skip before rep)."""
    if name != "legacy_xception":
        return keys

    def place(k: str) -> tuple[int, bool]:
        block = k.split(".")[0]
        first = next(i for i, other in enumerate(keys) if other.split(".")[0] == block)
        return first, ".skip" in k

    return sorted(keys, key=place)  # stable: each block's rep keys, then its skip keys


def genotype_of(name: str):
    return MEMBERS[name][0]() if name in MEMBERS else load_genotype(f"zoo:{name}")


def check(name: str) -> float:
    torch.manual_seed(0)
    ref = timm.create_model(name) if name in TIMM else getattr(tvm, name)()
    genotype = genotype_of(name)
    ours = build(genotype)
    theirs = ref.state_dict()
    keys = reference_order(name, [k for k in theirs if not k.endswith("num_batches_tracked")])
    own = [k for k in ours.state_dict() if not k.endswith("num_batches_tracked")]
    assert len(own) == len(keys), f"{name}: {len(own)} tensors here, {len(keys)} in the reference"
    with torch.no_grad():
        for k in keys:  # random BN statistics too, so the check sees every tensor
            if k.endswith("running_var"):
                theirs[k].uniform_(0.5, 2.0)
            elif k.endswith(("running_mean", "bias")) or theirs[k].dim() == 1:
                theirs[k].normal_(0, 0.1)
        ref.load_state_dict(theirs)
        state = {k: theirs[r].reshape(ours.state_dict()[k].shape) for k, r in zip(own, keys, strict=True)}
        ours.load_state_dict(state, strict=False)
        ref.eval()
        ours.eval()
        x = torch.randn(2, 3, genotype.resolution, genotype.resolution)
        a, b = ref(x), ours(x)
    return float((a - b).abs().max() / a.abs().max())


def main() -> None:
    for name in sys.argv[1:] or ZOO + list(MEMBERS):
        print(f"{name}: max |ours - reference| / max |reference| = {check(name):.2e}", flush=True)


if __name__ == "__main__":
    main()
