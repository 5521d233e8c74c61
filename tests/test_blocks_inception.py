"""Issue 26, part A: the inception family (GoogLeNet, Inception-v3, Inception-v4, Inception-ResNet-v2) and
AlexNet / LeNet-5 through plain (valid padding, 3x3 pools, LRN) and the conv stem (11x11 stride 4, explicit
padding). Parameter counts below are worked out by hand from the layer shapes; the zoo networks' counts are
in tests/test_zoo_counts.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from searchspace import build_model, load_genotype, parse_genotype
from searchspace.blocks import BlockArgs, get_family
from searchspace.blocks.inception import REFERENCE, WIDTHS, widths
from searchspace.blocks.plain import LocalResponseNorm
from searchspace.params import check_params
from searchspace.resolve import resolve
from searchspace.space import space_from_dict
from tests.block_helpers import make_block
from tests.test_blocks_classic import (
    check_onnx_round_trip,
    check_parts_show_and_latency,
    one_line,
    params,
    run,
)


def cbn(c_in: int, c_out: int, kh: int = 1, kw: int | None = None) -> int:
    """A conv (no bias) + BN."""
    return c_in * c_out * kh * (kw or kh) + 2 * c_out


# ------------------------------------------------------------------------------------------- inception


def test_v1_counts_and_the_pool_branch_takes_the_rest() -> None:
    block = make_block("inception", 16, 32, 1, form="v1", one=8, red_a=8, out_a=12, red_b=4, out_b=6, pool="max")
    # 1x1 8 | 8 -> 3x3 12 | 4 -> 3x3 6 (torchvision's "5x5") | max pool -> 1x1 32 - 26 = 6
    assert params(block) == cbn(16, 8) + cbn(16, 8) + cbn(8, 12, 3) + cbn(16, 4) + cbn(4, 6, 3) + cbn(16, 6)
    paper = make_block("inception", 16, 32, 1, form="v1", one=8, red_a=8, out_a=12, red_b=4, out_b=6, kernel=5)
    assert params(paper) - params(block) == 4 * 6 * (25 - 9)
    assert run(block, 16).shape == (2, 32, 9, 9)
    # stride 2 max-pools first (3x3, ceil mode, GoogLeNet): 9 -> 4, 14 -> 7
    assert run(make_block("inception", 16, 32, 2), 16).shape == (2, 32, 4, 4)
    assert [get_family("inception").output_size(s, 2) for s in (9, 14, 28)] == [4, 7, 14]


def test_forms_a_b_c_counts() -> None:
    # a: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1
    a = make_block("inception", 16, 40, 1, form="a", one=8, red_a=6, out_a=8, red_b=8, mid=12, out_b=12, kernel=5)
    assert params(a) == (cbn(16, 8) + cbn(16, 6) + cbn(6, 8, 5) + cbn(16, 8) + cbn(8, 12, 3) + cbn(12, 12, 3)
                         + cbn(16, 12))
    # b: 1x1 | 1x1 -> 1x7 (mid) -> 7x1 | 1x1 -> 7x1 -> 1x7 (mid) -> 7x1 -> 1x7 | pool -> 1x1
    b = make_block("inception", 16, 40, 1, form="b", one=8, red_a=6, out_a=8, red_b=6, mid=10, out_b=12, kernel=7)
    assert params(b) == (cbn(16, 8) + cbn(16, 6) + cbn(6, 10, 1, 7) + cbn(10, 8, 7, 1) + cbn(16, 6)
                         + cbn(6, 6, 7, 1) + cbn(6, 10, 1, 7) + cbn(10, 10, 7, 1) + cbn(10, 12, 1, 7) + cbn(16, 12))
    # c: 1x1 | 1x1 -> (1x3 | 3x1) | 1x1 -> 3x3 (mid) -> (1x3 | 3x1) | pool -> 1x1
    c = make_block("inception", 16, 48, 1, form="c", one=8, red_a=6, out_a=12, red_b=8, mid=10, out_b=16)
    assert params(c) == (cbn(16, 8) + cbn(16, 6) + 2 * cbn(6, 6, 1, 3) + cbn(16, 8) + cbn(8, 10, 3)
                         + 2 * cbn(10, 8, 1, 3) + cbn(16, 12))
    # c_v4: branch b is 1x1 -> 3x1 (mid) -> 1x3 (out_b) -> (1x3 | 3x1), each half of out_b
    c4 = make_block("inception", 16, 48, 1, form="c_v4", one=8, red_a=6, out_a=12, red_b=8, mid=10, out_b=16)
    assert params(c4) == (cbn(16, 8) + cbn(16, 6) + 2 * cbn(6, 6, 1, 3) + cbn(16, 8) + cbn(8, 10, 3, 1)
                          + cbn(10, 16, 1, 3) + 2 * cbn(16, 8, 1, 3) + cbn(16, 12))
    for block, out in ((a, 40), (b, 40), (c, 48), (c4, 48)):
        assert run(block, 16).shape == (2, out, 9, 9)


def test_reductions_pass_the_input_and_shrink_without_padding() -> None:
    # reduce_a: 3x3 s2 (the rest: 64 - 16 - 20 = 28) | 1x1 -> 3x3 -> 3x3 s2 | max pool (the input's 16)
    ra = make_block("inception", 16, 64, 2, form="reduce_a", red_b=8, mid=12, out_b=20)
    assert params(ra) == cbn(16, 28, 3) + cbn(16, 8) + cbn(8, 12, 3) + cbn(12, 20, 3)
    assert run(ra, 16).shape == (2, 64, 4, 4) and run(ra, 16, 17).shape == (2, 64, 8, 8)  # (n - 3) // 2 + 1
    # reduce_b: 1x1 -> 3x3 s2 | 1x1 -> 1x7 -> 7x1 (mid) -> 3x3 s2 | max pool; one adds red_a -> 3x3 s2
    rb = make_block("inception", 16, 64, 2, form="reduce_b", one=6, red_a=8, red_b=8, mid=10, out_b=12, kernel=7)
    assert params(rb) == (cbn(16, 8) + cbn(8, 30, 3) + cbn(16, 8) + cbn(8, 6, 3) + cbn(16, 8) + cbn(8, 8, 1, 7)
                          + cbn(8, 10, 7, 1) + cbn(10, 12, 3))
    assert run(rb, 16).shape == (2, 64, 4, 4)
    # at stride 1 (Inception-v4's Mixed_4a): no pool branch, the last 3x3s unpadded: 9 -> 7
    stem = make_block("inception", 16, 24, 1, form="reduce_b", red_a=8, red_b=8, mid=8, out_b=12, kernel=7)
    assert run(stem, 16).shape == (2, 24, 7, 7)
    family = get_family("inception")
    stem_args = _args(16, 24, 1, form="reduce_b", red_a=8, red_b=8, mid=8, out_b=12, kernel=7)
    assert [family.out_size(s, stem_args) for s in (9, 71)] == [7, 69]
    ra_args = _args(16, 64, 2, form="reduce_a", red_b=8, mid=12, out_b=20)
    assert [family.out_size(s, ra_args) for s in (9, 35, 17)] == [4, 17, 8]


def test_residual_adds_the_scaled_branches() -> None:
    block = make_block("inception", 32, 32, 1, form="a", one=4, red_a=4, out_a=4, red_b=4, mid=6, out_b=8,
                       kernel=3, residual=True, scale=0.17).eval()
    assert block.up.bias is not None and block.up.in_channels == 16  # no pool branch: 4 + 4 + 8
    x = torch.randn(2, 32, 9, 9)
    with torch.no_grad():
        y = torch.cat([b(x) for b in block.branches], 1)
        assert torch.allclose(block(x), (x + 0.17 * block.up(y)).relu(), atol=1e-6)
    last = make_block("inception", 32, 32, 1, form="b", out_b=0, residual=True, final_act=False)
    assert isinstance(last.act, nn.Identity) and len(last.branches) == 2  # 1x1 and branch a


@pytest.mark.parametrize("form", list(REFERENCE))
def test_null_widths_scale_the_reference_module(form) -> None:
    ref_out, ref = REFERENCE[form]
    reduction = form.startswith("reduce")
    in_ch, stride = ({"reduce_a": 288, "reduce_b": 768}[form], 2) if reduction else (192, 1)
    out = ref_out + (in_ch if reduction else 0)  # the reference module itself: Mixed_6a is 288 -> 768
    assert [widths(_args(in_ch, out, stride, form=form))[n] for n in WIDTHS] == list(ref)
    assert run(make_block("inception", in_ch, out, stride, form=form), in_ch).shape[1] == out
    # and the narrowest width a search picks builds, every branch with at least one channel
    small = widths(_args(16, 32, 2, form=form) if reduction else _args(16, 16, 1, form=form))
    assert all(small[k] >= 1 for k, r in zip(WIDTHS, ref, strict=True) if r)
    assert reduction or small["pool"] >= 1


def _args(in_ch: int, out: int, stride: int, **raw) -> BlockArgs:
    return BlockArgs(in_ch, out, stride, check_params(raw, get_family("inception").params, "b"))


@pytest.mark.parametrize("in_ch, out, stride, raw, message", [
    (32, 48, 1, {"residual": True}, "b.residual: true needs stride 1 and out == in (32); got out 48 at stride 1"),
    (16, 64, 2, {"form": "reduce_a", "out_a": 20}, "b.out_a: 20: a reduction derives it (out - in - one - out_b); "
                                                   "leave it null"),
    (16, 64, 2, {"form": "reduce_a", "residual": True}, "b.residual: true: a reduction widens its input"),
    (16, 32, 1, {"one": 16, "out_a": 16}, "b.out: 32 leaves the pool branch -4 channels (out - one - out_a - "
                                          "out_b); use a larger out or narrower branches"),
    (16, 40, 2, {"form": "reduce_a", "out_b": 24}, "b.out: 40 leaves branch a 0 channels"),
    (16, 32, 1, {"form": "c", "out_a": 1}, "b.out_a: 1: form c splits it in two halves; use 0 or >= 2"),
    (16, 32, 1, {"form": "d"}, "b.form: d is not one of v1, a, b, c, c_v4, reduce_a, reduce_b"),
    (16, 32, 1, {"kernel": 4}, "b.kernel: 4 is not one of 3, 5, 7"),
])
def test_bad_parameters_refused_in_one_line(in_ch, out, stride, raw, message) -> None:
    assert one_line(lambda: make_block("inception", in_ch, out, stride, **raw)).startswith(message)


def test_reduction_too_small_a_map_names_the_block() -> None:
    raw = small_raw("inception")
    raw["input"]["resolution"] = 16  # stem 8 -> reduce_a 3 -> the stride-1 reduction (3 - 2 = 1) -> ...
    raw["stages"][1]["blocks"][0]["stride"] = 2
    message = one_line(lambda: parse_genotype(raw))
    assert message.startswith("stages[")


# ----------------------------------------------------------------------------------- plain and stem


def test_plain_valid_padding_max3_pool_and_lrn() -> None:
    lenet_c3 = make_block("plain", 6, 16, 2, kernel=5, padding="valid", bias=True, norm=False)
    assert params(lenet_c3) == 6 * 16 * 25 + 16
    assert run(lenet_c3, 6, 14).shape == (2, 16, 5, 5)  # 14 -> 10 -> 5
    alex = make_block("plain", 64, 192, 2, kernel=5, bias=True, norm=False, pool="max3", lrn=True)
    assert isinstance(alex[1], LocalResponseNorm) and alex[-1].kernel_size == 3
    x = torch.randn(2, 8, 5, 5) * 10
    assert torch.allclose(alex[1](x), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(x), atol=1e-6)  # torch's, reshaped
    assert run(alex, 64, 27).shape == (2, 192, 13, 13)
    assert params(alex) == 64 * 192 * 25 + 192  # LRN has no weights


def test_alexnet_and_lenet_shapes() -> None:
    alexnet = resolve(load_genotype("zoo:alexnet"))
    assert alexnet.stem_size == 27 and [b.out_size for b in alexnet.blocks] == [13, 13, 13, 6]
    stem = build_model("zoo:alexnet").stem
    assert stem[0][0].kernel_size == (11, 11) and stem[0][0].stride == (4, 4) and stem[0][0].padding == (2, 2)
    lenet = load_genotype("zoo:lenet5")
    net = resolve(lenet)
    assert net.stem_size == 14 and [b.out_size for b in net.blocks] == [5, 1]
    with torch.no_grad():
        assert build_model(lenet).eval()(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_stem_errors_in_one_line() -> None:
    raw = load_genotype("zoo:alexnet").to_dict()
    raw["stem"]["stride"] = 3
    assert one_line(lambda: parse_genotype(raw)) == "stem.stride: 3 is not one of 1, 2, 4"
    raw = load_genotype("zoo:lenet5").to_dict()
    raw["stages"][1]["blocks"][0]["kernel"] = 5
    raw["input"]["resolution"] = 24  # 20 -> 10 -> 6 -> 3: C5's 5x5 valid conv leaves nothing
    assert one_line(lambda: parse_genotype(raw)).startswith("stages[1].blocks[0]: leaves no feature map from 3x3")


def test_googlenet_modules_match_torchvision_widths() -> None:
    net = resolve(load_genotype("zoo:googlenet"))
    modules = [b for b in net.blocks if b.type == "inception"]
    outs = [(b.args.out, widths(b.args)["pool"], b.out_size) for b in modules]
    assert outs == [(256, 32, 28), (480, 64, 28), (512, 64, 14), (512, 64, 14), (512, 64, 14), (528, 64, 14),
                    (832, 128, 14), (832, 128, 7), (1024, 128, 7)]


def test_inception_v3_map_sizes() -> None:
    net = resolve(load_genotype("zoo:inception_v3"))
    assert net.stem_size == 149
    assert [b.out_size for b in net.blocks] == [147, 73, 73, 35, 35, 35, 35, 17, 17, 17, 17, 17, 8, 8, 8]


# ------------------------------------------------------------------- the space, export, latency, show


def test_space_of_inception_and_mbconv_builds_and_runs() -> None:
    space = space_from_dict({"types": ["inception", "mbconv"]})
    genotype = space.random_genotype(0)
    with torch.no_grad():
        assert build_model(genotype).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
    only = space_from_dict({"types": ["inception"]})
    forms = {b.params["form"] for s in range(12) for stage in only.random_genotype(s).stages for b in stage}
    assert forms == {"v1", "a", "b"}


SMALL = {
    "inception": {
        "stem": {"type": "conv", "out": 16, "stride": 2},
        "stages": [[{"type": "inception", "form": "v1", "out": 32, "pool": "max"},
                    {"type": "inception", "form": "reduce_a", "out": 64, "stride": 2},
                    {"type": "inception", "form": "reduce_b", "out": 48, "stride": 1, "kernel": 7}],
                   [{"type": "inception", "form": "a", "out": 48, "kernel": 5, "pool": "avg_exclude"},
                    {"type": "inception", "form": "b", "out": 48, "residual": True, "scale": 0.2},
                    {"type": "inception", "form": "c", "out": 64, "stride": 2},
                    {"type": "inception", "form": "c_v4", "out": 64, "final_act": False, "residual": True}]]},
    "plain": {
        "stem": {"type": "conv", "out": 16, "kernel": 11, "stride": 4, "pad": 2, "bias": True, "norm": False,
                 "pool": "max3"},
        "stages": [[{"type": "plain", "out": 24, "kernel": 5, "stride": 2, "pool": "max3", "lrn": True,
                     "bias": True, "norm": False}],
                   [{"type": "plain", "out": 32, "kernel": 3, "padding": "valid"}]],
        "head": {"pool_size": 5, "hidden": 32, "hidden_layers": 2, "dropout": 0.5}},
}


def small_raw(family: str) -> dict:
    spec = SMALL[family]
    return {"format": "nas-genotype/1", "name": f"small_{family}", "input": {"resolution": 64 if family ==
                                                                                "inception" else 128},
            "stem": spec["stem"], "stages": [{"blocks": s} for s in spec["stages"]],
            "head": {"num_classes": 10, **spec.get("head", {})}}


@pytest.mark.parametrize("family", list(SMALL))
def test_onnx_export_matches_onnxruntime(family, tmp_path, capsys) -> None:
    genotype = parse_genotype(small_raw(family))
    check_onnx_round_trip(genotype, tmp_path, capsys, genotype.resolution)


@pytest.mark.parametrize("family", list(SMALL))
def test_latency_parts_show_and_measurement(family, tmp_path, capsys) -> None:
    check_parts_show_and_latency(parse_genotype(small_raw(family)), family, tmp_path, capsys)
