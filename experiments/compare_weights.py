"""Weight-for-weight check of zoo genotypes against their torchvision / timm models.

Every tensor of the reference's state dict (random weights, random BN statistics) is copied in
order into our network (same shapes required, a 1x1 conv classifier read as a linear one), and
both networks run the same random images, in eval mode (running statistics) and in train mode
(batch statistics). The relative difference ``max |ours - ref| / max |ref|`` should be ~1e-6:
the same layers, in the same order, computing the same function. torchvision and timm are not
project dependencies (see experiments/reference_counts.py for installing them aside):

    PYTHONPATH=/tmp/refpkgs .venv/bin/python experiments/compare_weights.py [NAME ...]
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import timm  # noqa: E402
import torch  # noqa: E402
import torchvision.models as tvm  # noqa: E402

from searchspace import build_model  # noqa: E402

# zoo name -> (source, resolution)
NAMES = {
    "densenet121": ("tv", 224), "densenet169": ("tv", 224), "resnetv2_50": ("timm", 224),
    "darknet53": ("timm", 256), "cspresnet50": ("timm", 256), "cspresnext50": ("timm", 256),
    "cspdarknet53": ("timm", 256),
}


def reference(name: str) -> torch.nn.Module:
    source, _ = NAMES[name]
    return getattr(tvm, name)() if source == "tv" else timm.create_model(name)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights and plausible random BN statistics, so that a misplaced tensor shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif t.dim() == 1:  # BN weight
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:  # conv / linear weight: fan-in scaled
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=gen) * (2.0 / fan_in) ** 0.5)


def copy_in_order(ref: torch.nn.Module, ours: torch.nn.Module) -> int:
    """Copy every tensor of ``ref``'s state dict into ``ours`` position by position; returns the count."""
    src, dst = list(ref.state_dict().items()), list(ours.state_dict().items())
    if len(src) != len(dst):
        raise SystemExit(f"{len(src)} reference tensors, {len(dst)} ours")
    with torch.no_grad():
        for (ref_name, a), (our_name, b) in zip(src, dst, strict=True):
            conv_as_linear = a.dim() == 4 and b.dim() == 2 and a.shape[:2] == b.shape and a.shape[2:] == (1, 1)
            if a.shape != b.shape and not conv_as_linear:
                raise SystemExit(f"{ref_name} {tuple(a.shape)} does not fit {our_name} {tuple(b.shape)}")
            b.copy_(a.reshape(b.shape))
    return len(src)


def relative_diff(ref: torch.nn.Module, ours: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        a, b = ref(x), ours(x)
    return ((a - b).abs().max() / a.abs().max()).item()


def main(names: list[str]) -> None:
    torch.manual_seed(0)
    for name in names:
        _, resolution = NAMES[name]
        ref, ours = reference(name), build_model(f"zoo:{name}")
        randomize(ref)
        tensors = copy_in_order(ref, ours)
        x = torch.randn(2, 3, resolution, resolution)
        eval_diff = relative_diff(ref.eval(), ours.eval(), x)
        train_diff = relative_diff(ref.train(), ours.train(), x)
        print(f"{name}: {tensors} tensors copied in order; relative output difference eval {eval_diff:.2e}, "
              f"train {train_diff:.2e}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(NAMES))
