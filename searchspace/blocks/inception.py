"""Inception module (GoogLeNet, Inception-v3, Inception-ResNet): parallel branches, concatenated.

Branches that read the same input, concatenated: a 1x1 conv to ``one`` channels; branch a, a 1x1
reduction to ``red_a`` then the form's convs to ``out_a``; branch b, a reduction to ``red_b`` then a
longer chain through ``mid`` to ``out_b``; and a pool branch. A width of 0 leaves that conv or branch
out. ``form`` picks the convs (k is ``kernel``; every conv is conv-BN-act, no bias):

  v1        a: 3x3; b: kxk (GoogLeNet: 5x5, torchvision's 3x3); pool branch: pool, 1x1 conv.
  a         a: kxk (Inception-v3 Mixed_5b: 5; Inception-v4 A, Inception-ResNet block35: 3);
            b: 3x3 to mid, 3x3.
  b         a: 1xk to mid, kx1; b: kx1 (red_b wide), 1xk to mid, kx1, 1xk (Inception-v3 Mixed_6b,
            Inception-v4 B: k 7; Inception-ResNet block17: 7, block8: 3).
  c         a: 1x3 and 3x1 side by side, each half of out_a; b: 3x3 to mid, then 1x3 and 3x1 side by
            side (Inception-v3 Mixed_7b).
  c_v4      a: as c; b: 3x1 to mid, 1x3 to out_b, then the 1x3 | 3x1 split (Inception-v4 C).
  reduce_a  grid reduction: a: 3x3 stride 2; b: 3x3 to mid, 3x3 stride 2; a 3x3 stride-2 max pool
            passes the input on (Inception-v3 Mixed_6a, Inception-v4 A, Inception-ResNet-v2 6a).
  reduce_b  a: 3x3 stride 2; b: 1xk (red_b wide), kx1 to mid, 3x3 stride 2; the max pool (Mixed_7a).
  A reduction's stride-2 3x3s are unpadded; ``one`` > 0 adds a branch red_a -> 3x3 stride 2 to
  ``one`` (Inception-ResNet-v2 7a). At stride 1 a reduction has no pool branch and its last 3x3s are
  unpadded at stride 1, shrinking the map by 2 (Inception-v4's stem, Mixed_4a).

Widths follow ``out``: the pool branch's 1x1 makes what the others leave (out - one - out_a - out_b);
at a reduction the pool passes the input on and branch a makes the rest (out - in - one - out_b; at
stride 1 out - one - out_b). A null
width scales the form's reference module (GoogLeNet 3a, Inception-v3 Mixed_5b, 6b, 7b, 6a, 7a) to
``out`` (to out - in at a reduction). Stride 2 on the other forms max-pools first (3x3, ceil mode: GoogLeNet
between its stages). ``residual`` (Inception-ResNet) drops the pool branch and adds the branches,
through a 1x1 conv with bias back to ``out`` (= in) and times ``scale``, to the input, then act.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.blocks.osa import pool_output_size
from searchspace.layers import ACTIVATIONS, activation
from searchspace.params import MAX_CHANNELS, Param

FORMS = ("v1", "a", "b", "c", "c_v4", "reduce_a", "reduce_b")
REDUCTIONS = ("reduce_a", "reduce_b")
WIDTHS = ("one", "red_a", "out_a", "red_b", "mid", "out_b")
# each form's reference module: its out (out - in at a reduction) and its WIDTHS; null widths scale it
REFERENCE: dict[str, tuple[int, tuple[int, ...]]] = {
    "v1": (256, (64, 96, 128, 16, 0, 32)),  # GoogLeNet inception 3a, pool branch 32
    "a": (256, (64, 48, 64, 64, 96, 96)),  # Inception-v3 Mixed_5b, pool branch 32
    "b": (768, (192, 128, 192, 128, 128, 192)),  # Mixed_6b, pool branch 192
    "c": (2048, (320, 384, 768, 448, 384, 768)),  # Mixed_7b, pool branch 192
    "c_v4": (1536, (256, 384, 512, 384, 448, 512)),  # Inception-v4 C, pool branch 256
    "reduce_a": (480, (0, 0, 384, 64, 96, 96)),  # Mixed_6a: 288 -> 768
    "reduce_b": (512, (0, 192, 320, 192, 192, 192)),  # Mixed_7a: 768 -> 1280
}
WIDTH_DOCS = {
    "one": "1x1 branch width (0: none)",
    "red_a": "1x1 reduction before branch a (0: none)",
    "out_a": "branch a output (0: none; a reduction derives it)",
    "red_b": "1x1 reduction before branch b (0: none)",
    "mid": "width inside branch b (and branch a of form b)",
    "out_b": "branch b output (0: none)",
}
PARAMS = (
    Param("form", str, "v1", "the branches' convs: v1 (GoogLeNet), a, b, c (Inception-v3 A, C, E), c_v4 "
          "(Inception-v4 C), reduce_a, reduce_b (grid reductions)", choices=FORMS, search=("v1", "a", "b")),
    *(Param(name, int, None, f"{doc} (null: the reference module scaled)", low=0, high=MAX_CHANNELS, nullable=True)
      for name, doc in WIDTH_DOCS.items()),
    Param("kernel", int, 3, "the form's kxk (v1: branch b, a: branch a) or 1xk / kx1 (b, reduce_b) kernel",
          choices=(3, 5, 7), search=(3, 5)),
    Param("pool", str, "avg", "pool of the pool branch (3x3, stride 1): max, avg (padding counted: torchvision) or "
          "avg_exclude (padding not counted: timm)", choices=("max", "avg", "avg_exclude")),
    Param("residual", bool, False, "Inception-ResNet: no pool branch; a 1x1 conv with bias maps the branches back "
          "to out (= in), scaled and added to the input"),
    Param("scale", float, 1.0, "residual: the scale of the branches (Inception-ResNet-v2: 0.17, 0.1, 0.2)",
          low=0.0, high=1.0),
    Param("final_act", bool, True, "residual: act after the add (false: Inception-ResNet-v2's last block8)"),
    Param("act", str, "relu", "activation", choices=ACTIVATIONS, search=("relu", "swish")),
)

# (width, kernel or None for a 1x3 | 3x1 split, stride, unpadded)
Step = tuple[int, tuple[int, int] | None, int, bool]


def widths(args: BlockArgs) -> dict[str, int]:
    """Every branch width of one module (``pool``: the pool branch's 1x1, 0 when there is none)."""
    form = args["form"]
    ref_out, ref = REFERENCE[form]
    passed = args.in_ch if form in REDUCTIONS and args.stride > 1 else 0  # the pool branch's channels
    base = args.out - passed
    w = {name: args[name] if args[name] is not None else max(1, round(r * base / ref_out)) if r else 0
         for name, r in zip(WIDTHS, ref, strict=True)}
    w["pool"] = 0
    if form in REDUCTIONS:
        w["out_a"] = base - w["one"] - w["out_b"]
    elif not args["residual"]:
        w["pool"] = args.out - w["one"] - w["out_a"] - w["out_b"]
    return w


def check(args: BlockArgs, path: str) -> None:
    form, residual = args["form"], args["residual"]
    if form in REDUCTIONS:
        require(args["out_a"] is None, f"{path}.out_a", f"{args['out_a']}: a reduction derives it (out - in - "
                "one - out_b); leave it null")
        require(not residual, f"{path}.residual", "true: a reduction widens its input and cannot add it")
    if residual:
        require(args.stride == 1 and args.out == args.in_ch, f"{path}.residual", f"true needs stride 1 and out "
                f"== in ({args.in_ch}); got out {args.out} at stride {args.stride}")
    w = widths(args)
    if form in REDUCTIONS:
        require(w["out_a"] >= 1, f"{path}.out", f"{args.out} leaves branch a {w['out_a']} channels (out - "
                f"passed input {args.out - w['out_a'] - w['one'] - w['out_b']} - one - out_b); use a larger out")
    elif not residual:
        require(w["pool"] >= 1, f"{path}.out", f"{args.out} leaves the pool branch {w['pool']} channels (out - "
                f"one - out_a - out_b); use a larger out or narrower branches")
    require(w["one"] + w["out_a"] + w["out_b"] + w["pool"] >= 1, f"{path}.out_a", "0: the module has no branch")
    for name in ("out_a", "out_b"):
        require(form not in ("c", "c_v4") or w[name] != 1, f"{path}.{name}",
                f"1: form {form} splits it in two halves; use 0 or >= 2")


class Conv(nn.Sequential):
    """Conv (no bias)-BN-act with a (kh, kw) kernel: 'same' padding, or none (``valid``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int], act: str, stride: int = 1,
                 valid: bool = False) -> None:
        pad = (0, 0) if valid else ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
        super().__init__(nn.Conv2d(in_ch, out_ch, kernel, stride, pad, bias=False), nn.BatchNorm2d(out_ch),
                         activation(act))


class Split(nn.Module):
    """A 1x3 and a 3x1 conv side by side on the same input, concatenated (Inception-v3's E module)."""

    def __init__(self, in_ch: int, out_ch: int, act: str) -> None:
        super().__init__()
        self.wide = Conv(in_ch, out_ch // 2, (1, 3), act)
        self.tall = Conv(in_ch, out_ch - out_ch // 2, (3, 1), act)

    def forward(self, x):
        return torch.cat((self.wide(x), self.tall(x)), dim=1)


def _c(width: int, kernel: tuple[int, int] | None, stride: int = 1, valid: bool = False) -> Step:
    return width, kernel, stride, valid


def steps(form: str, w: dict[str, int], k: int, stride: int, in_ch: int) -> list[tuple[int, list[Step]]]:
    """Branch a, the reduction's extra branch (``one``) and branch b: (1x1 reduction, convs after it)."""
    mid, red_b, out_a, out_b = w["mid"], w["red_b"] or in_ch, w["out_a"], w["out_b"]
    if form in REDUCTIONS:  # the last 3x3s are unpadded (stride 2, or 1 in Inception-v4's stem)
        b = [_c(mid, (3, 3))] if form == "reduce_a" else [_c(red_b, (1, k)), _c(mid, (k, 1))]
        return [(w["red_a"], [_c(out_a, (3, 3), stride, True)]), (w["red_a"], [_c(w["one"], (3, 3), stride, True)]),
                (w["red_b"], b + [_c(out_b, (3, 3), stride, True)])]
    if form == "v1":
        a, b = [_c(out_a, (3, 3))], [_c(out_b, (k, k))]
    elif form == "a":
        a, b = [_c(out_a, (k, k))], [_c(mid, (3, 3)), _c(out_b, (3, 3))]
    elif form == "b":
        a = [_c(mid, (1, k)), _c(out_a, (k, 1))]
        b = [_c(red_b, (k, 1)), _c(mid, (1, k)), _c(mid, (k, 1)), _c(out_b, (1, k))]
    else:
        a = [_c(out_a, None)]
        b = [_c(mid, (3, 3))] if form == "c" else [_c(mid, (3, 1)), _c(out_b, (1, 3))]
        b.append(_c(out_b, None))
    return [(w["red_a"], a), (w["red_b"], b)]


def branch(in_ch: int, reduce: int, chain: list[Step], act: str) -> nn.Sequential:
    """A 1x1 reduction (when ``reduce``) and the chain of convs."""
    layers: list[nn.Module] = [Conv(in_ch, reduce, (1, 1), act)] if reduce else []
    width = reduce or in_ch
    for out, kernel, stride, valid in chain:
        layers.append(Split(width, out, act) if kernel is None else Conv(width, out, kernel, act, stride, valid))
        width = out
    return nn.Sequential(*layers)


def pool_branch(kind: str) -> nn.Module:
    if kind == "max":
        return nn.MaxPool2d(3, 1, 1)
    return nn.AvgPool2d(3, 1, 1, count_include_pad=kind == "avg")


class Inception(nn.Module):
    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        form, act, in_ch = args["form"], args["act"], args.in_ch
        w = widths(args)
        reduction = form in REDUCTIONS
        self.down = nn.MaxPool2d(3, 2, ceil_mode=True) if args.stride > 1 and not reduction else nn.Identity()
        one = w["one"] and not reduction  # a reduction's one is a 3x3 stride-2 branch (steps)
        branches: list[nn.Module] = [Conv(in_ch, w["one"], (1, 1), act)] if one else []
        for reduce, chain in steps(form, w, args["kernel"], args.stride, in_ch):
            if chain[-1][0]:
                branches.append(branch(in_ch, reduce, chain, act))
        if reduction and args.stride > 1:
            branches.append(nn.MaxPool2d(3, 2))
        elif w["pool"]:
            branches.append(nn.Sequential(pool_branch(args["pool"]), Conv(in_ch, w["pool"], (1, 1), act)))
        self.branches = nn.ModuleList(branches)
        self.up: nn.Module | None = None
        if args["residual"]:
            self.up = nn.Conv2d(w["one"] + w["out_a"] + w["out_b"], args.out, 1)
            self.scale = args["scale"]
            self.act = activation(act) if args["final_act"] else nn.Identity()

    def forward(self, x):
        x = self.down(x)
        y = torch.cat([b(x) for b in self.branches], dim=1)
        if self.up is None:
            return y
        return self.act(x + self.up(y) * self.scale)


def size_rule(size: int, args: BlockArgs) -> int:
    """Spatial size after the module: a reduction's unpadded 3x3s (floor), else the ceil-mode pool at stride 2."""
    if args["form"] in REDUCTIONS:
        return (size - 3) // 2 + 1 if args.stride > 1 else size - 2
    return pool_output_size(size, args.stride)


FAMILY = BlockFamily(
    name="inception",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=Inception,
    check=check,
    channel_params=WIDTHS,
    output_size=pool_output_size,
    size_rule=size_rule,
)
