"""Issue 26, part C: the octave (OctResNet) and eesp (ESPNetv2) families and their zoo networks.

Neither network is in torchvision or timm. The counts below are worked out from the authors' code
(facebookresearch/OctConv and d-li14/octconv.pytorch; sacmehta/ESPNetv2 imagenet/Model.py) layer by
layer, independently of the families' modules; docs/zoo.md compares them with the papers' tables."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.config import load_config
from nas.search.run import search
from predictors.cost import count_macs, count_params
from searchspace import build_model, load_genotype, parse_genotype
from searchspace.blocks.eesp import dilations
from searchspace.space import space_from_dict
from tests.block_helpers import genotype, make_block
from tests.search_helpers import TINY_SPACE, FakeCost, FakeTrainer, tiny_overrides
from tests.test_blocks_classic import (
    check_onnx_round_trip,
    check_parts_show_and_latency,
    one_line,
    params,
    run,
)

torch.set_num_threads(1)
NEW = ("octave", "eesp")

# ------------------------------------------------------------------------------------------ octave


@pytest.mark.parametrize("in_ch, out, stride, alpha, alpha_in", [
    (64, 256, 1, 0.25, 0.0), (256, 256, 1, 0.5, None), (256, 512, 2, 0.25, None), (128, 256, 2, 0.0, 0.25)])
def test_octave_block_counts_as_the_bottleneck(in_ch, out, stride, alpha, alpha_in):
    block = make_block("octave", in_ch, out, stride, alpha=alpha, alpha_in=alpha_in)
    assert params(block) == params(make_block("bottleneck", in_ch, out, stride))  # four paths = one conv
    assert run(block, in_ch).shape == (2, out, (9 - 1) // stride + 1, (9 - 1) // stride + 1)


def oct_macs(ins: tuple[int, int], outs: tuple[int, int], kernel: int, size: int) -> int:
    """An octave conv at stride 1: high->high on the full map, the three other paths on the half map."""
    (in_h, in_l), (out_h, out_l) = ins, outs
    half = (size + 1) // 2
    return kernel ** 2 * (size ** 2 * in_h * out_h + half ** 2 * (in_h * out_l + in_l * out_h + in_l * out_l))


def test_octave_block_macs_put_the_low_paths_at_half_resolution():
    block = make_block("octave", 64, 256, 1, alpha=0.25)  # in (48, 16), bottleneck (48, 16), out (192, 64)
    mid, io = (48, 16), ((48, 16), (192, 64))
    expected = oct_macs(io[0], mid, 1, 8) + oct_macs(mid, mid, 3, 8) + oct_macs(mid, io[1], 1, 8)
    assert count_macs(block, 8, 64) == expected + oct_macs(*io, 1, 8)  # + the projection shortcut


@pytest.mark.parametrize("size", [10, 9])
def test_the_low_part_travels_upsampled_and_is_computed_at_half_size(size):
    block = make_block("octave", 32, 32, 1, alpha=0.5).eval()
    seen = []
    block.conv2.conv.l2l.register_forward_hook(lambda m, args, y: seen.append(args[0].shape[-1]))
    y = run(block, 32, size)
    low = y[:, 16:]  # int(0.5 * 32) low-frequency channels, nearest-upsampled (cropped at an odd side)
    assert seen == [(size + 1) // 2]
    assert torch.equal(low, F.interpolate(low[:, :, ::2, ::2], scale_factor=2.0)[:, :, :size, :size])


def test_octave_without_a_low_part_is_the_bottleneck_at_stride_one():
    torch.manual_seed(0)
    octave, plain = make_block("octave", 64, 256, 1, alpha=0.0, alpha_in=0.0), make_block("bottleneck", 64, 256, 1)
    plain.load_state_dict(dict(zip(plain.state_dict(), octave.state_dict().values(), strict=True)))
    x = torch.randn(2, 64, 7, 7)
    with torch.no_grad():
        assert torch.allclose(octave.eval()(x), plain.eval()(x), atol=1e-6)


def test_oct_resnet50_counts_as_resnet50_and_its_last_stage_is_merged():
    model = build_model("zoo:oct_resnet50")
    assert count_params(model) == count_params(build_model("zoo:resnet50")) == 25557032
    lows = [block.conv3.bn_l is not None for stage in model.stages for block in stage]
    assert lows == [True] * 13 + [False] * 3  # alpha 0.25 in stages 1-3, merged in stage 4
    with torch.no_grad():
        assert model.eval().forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 2048, 2, 2)
        small = build_model("zoo:oct_resnet50", num_classes=10, in_channels=1).eval()
        assert small(torch.randn(1, 1, 64, 64)).shape == (1, 10)


def test_oct_resnet50_at_alpha_half_has_the_published_macs():
    # d-li14/octconv.pytorch's OctResNet-50 (alpha 0.5): 25.557M parameters, 2.367 GFLOPs (multiply-adds)
    raw = load_genotype("zoo:oct_resnet50").to_dict()
    for stage in raw["stages"]:
        for entry in stage["blocks"]:
            entry.update({k: 0.5 for k in ("alpha", "alpha_in") if entry.get(k) == 0.25})
    model = build_model(raw)
    assert count_params(model) == 25557032 and count_macs(model, 224) == 2367143936


# -------------------------------------------------------------------------------------------- eesp


@pytest.mark.parametrize("branches, r_lim, expected", [
    (4, 13, [1, 2, 3, 4]), (4, 7, [1, 1, 2, 3]), (4, 5, [1, 1, 1, 2]), (4, 3, [1, 1, 1, 1]),
    (8, 17, [1, 2, 3, 4, 5, 6, 7, 8])])
def test_dilations_follow_the_receptive_field_limit(branches, r_lim, expected):
    assert dilations(branches, r_lim) == expected


def cbr(c_in: int, c_out: int, kernel: int = 1, groups: int = 1, prelu: bool = True) -> int:
    """ESPNetv2's CBR (conv, BN, PReLU per channel) or CB (prelu False)."""
    return c_in * c_out * kernel ** 2 // groups + 2 * c_out + (c_out if prelu else 0)


def eesp_params(c_in: int, c_out: int, k: int = 4, act: bool = True) -> int:
    """Reduce, k depthwise 3x3 branches, BN-PReLU after the concat, grouped expand (CB), PReLU."""
    n = c_out // k
    return cbr(c_in, n, 1, k) + k * 9 * n + 3 * c_out + cbr(c_out, c_out, 1, k, prelu=False) + (c_out if act else 0)


def test_eesp_units_count_and_run():
    assert params(make_block("eesp", 256, 256, 1)) == eesp_params(256, 256) == 24512
    assert params(make_block("eesp", 128, 256, 2)) == eesp_params(128, 128, act=False) + 256  # + PReLU(out)
    assert params(make_block("eesp", 64, 32, 2)) == eesp_params(64, 32)  # narrower: a stride-2 EESP alone
    assert params(make_block("eesp", 64, 96, 1, unit="expand")) == cbr(64, 64, 3, 64) + cbr(64, 96, 1, 4)
    assert make_block("eesp", 8, 8, 1).reduce[0].groups == 2  # n = 2 branch channels: gcd(4, 2) groups
    for in_ch, out, stride in [(32, 32, 1), (32, 64, 2), (32, 16, 2), (16, 32, 1)]:
        assert run(make_block("eesp", in_ch, out, stride), in_ch).shape == (2, out, 9 if stride == 1 else 5,
                                                                            9 if stride == 1 else 5)


def test_eesp_adds_its_input_and_the_down_sampler_concatenates_the_pooled_input():
    unit = make_block("eesp", 16, 16, 1).eval()
    nn.init.zeros_(unit.expand[1].weight)  # the branches' output is zero: act(0 + x)
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        assert torch.allclose(unit(x), unit.act(x))
        down = make_block("eesp", 16, 48, 2, K=2).eval()
        nn.init.ones_(down.act.weight)  # PReLU slope 1: the identity
        assert torch.allclose(down(x)[:, :16], F.avg_pool2d(x, 3, 2, 1))


# ESPNetv2 at width s, as the reference builds it: (stem, four down-samplers and level widths, last width)
def espnetv2_reference_params(s: float) -> dict[str, int]:
    c = [32, 64, 128, 256, 512, 1024] if s == 1.0 else [32, 128, 256, 512, 1024, 1280]
    reinforce = [cbr(3, 3, 3) + cbr(3, c[i], 1, prelu=False) for i in (1, 2, 3, 4)]  # image -> 3x3 CBR -> 1x1 CB
    downs = [eesp_params(c[i - 1], c[i] - c[i - 1]) + c[i] for i in (1, 2, 3, 4)]  # the EESP's PReLU is built
    levels = 3 * eesp_params(c[2], c[2]) + 7 * eesp_params(c[3], c[3]) + 3 * eesp_params(c[4], c[4])
    tail = cbr(c[4], c[4], 3, c[4]) + cbr(c[4], c[5], 1, 4) + c[5] * 1000 + 1000
    total = cbr(3, c[0], 3) + sum(downs) + sum(reinforce) + levels + tail
    unused = reinforce[3] + sum(c[i] - c[i - 1] for i in (1, 2, 3, 4))  # level 5's reinforcement, unused PReLUs
    return {"total": total, "reinforcement": sum(reinforce[:3]), "unused": unused}


def espnetv2(s: float) -> dict:
    raw = load_genotype("zoo:espnetv2").to_dict()
    if s == 1.0:
        for stage in raw["stages"]:
            for entry in stage["blocks"]:
                entry["out"] = {128: 64, 256: 128, 512: 256, 1024: 512, 1280: 1024}[entry["out"]]
    return raw


@pytest.mark.parametrize("s, reference, ours", [(2.0, 3498136, 3487184), (1.0, 1670072, 1664432)])
def test_espnetv2_counts_the_reference_less_the_input_reinforcement(s, reference, ours):
    ref = espnetv2_reference_params(s)
    assert ref["total"] == reference  # the README: 3.49M (s = 2), 1.67M (s = 1)
    assert count_params(build_model(espnetv2(s))) == ref["total"] - ref["reinforcement"] - ref["unused"] == ours


def test_espnetv2_macs_are_the_published_figure_less_the_reinforcement():
    model = build_model("zoo:espnetv2")
    ours = count_macs(model, 224)
    assert ours == 283645440
    # the reinforcement's convs: a 3x3 3->3 and a 1x1 3->out at 56, 28 and 14 (out 128, 256, 512)
    reinforcement = sum(side ** 2 * (81 + 3 * out) for side, out in ((56, 128), (28, 256), (14, 512)))
    assert ours + reinforcement - 1280 * 1000 == 284806228  # the README's 284.8M leaves out the classifier
    assert abs(ours - 1280 * 1000 - 284.8e6) / 284.8e6 < 0.01
    with torch.no_grad():
        assert model.eval().forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 1280, 2, 2)


# ----------------------------------------------------------------------------------- errors, space


def entry(**fields) -> dict:
    return genotype([{"out": 16, **fields}])


@pytest.mark.parametrize("fields, message", [
    ({"type": "octave", "alpha": 0.3}, "stages[0].blocks[0].alpha: 0.3 is not one of 0, 0.125, 0.25, 0.5, 0.75"),
    ({"type": "octave", "alpha_in": 1}, "stages[0].blocks[0].alpha_in: 1 is not one of 0, 0.125, 0.25, 0.5, 0.75"),
    ({"type": "octave", "alpha": 0.125, "groups": 4},  # 4 groups of int(16 / 4) channels, 2 of them low
     "stages[0].blocks[0].groups: 4 does not divide the 16-channel bottleneck's 14 high- and 2 low-frequency "
     "channels; use groups that divide both, or another alpha"),
    ({"type": "eesp", "K": 3}, "stages[0].blocks[0].K: 3 does not divide the 16-channel input; use a K that "
     "divides the block's input and output widths (at stride 2 when out > input: the input and out - input)"),
    ({"type": "eesp", "out": 22, "stride": 2}, "stages[0].blocks[0].K: 4 does not divide the 6-channel strided "
     "branch (out - input); use a K that divides the block's input and output widths (at stride 2 when out > "
     "input: the input and out - input)"),
    ({"type": "eesp", "r_lim": 4}, "stages[0].blocks[0].r_lim: 4 is not one of 3, 5, 7, 9, 11, 13, 15, 17"),
    ({"type": "eesp", "unit": "down"}, "stages[0].blocks[0].unit: down is not one of eesp, expand"),
])
def test_bad_parameters_refused_in_one_line(fields, message):
    assert one_line(lambda: parse_genotype(entry(**fields))) == message


def test_a_space_of_the_new_families_and_mbconv_samples_networks_that_run():
    space = space_from_dict({"types": ["octave", "eesp", "mbconv"]})
    seen = {stage[0].type for seed in range(30) for stage in space.random_genotype(seed).stages}
    assert seen == {"octave", "eesp", "mbconv"}
    with torch.no_grad():
        assert build_model(space.random_genotype(0)).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_a_search_restricted_to_the_new_families_writes_a_winner_that_rebuilds(tmp_path):
    stages = [{**stage, "types": list(NEW)} for stage in TINY_SPACE["stages"]]
    config = load_config(overrides=tiny_overrides(tmp_path, "new", trials=4, space={**TINY_SPACE, "stages": stages}))
    trainer = FakeTrainer()
    search(config, quiet=True, cost_model=FakeCost(), trainer=trainer, retrain=lambda g, seed: trainer.accuracy(g))
    best = load_genotype(tmp_path / "runs" / "new" / "best.yaml")
    assert {b.type for stage in best.stages for b in stage} <= set(NEW)
    with torch.no_grad():
        assert build_model(best).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


# -------------------------------------------------------------------------- show, latency, export


SMALL = {  # split (alpha_in 0), alpha 0.25 -> 0.5 at stride 2 onto an odd map, merge (alpha 0); every eesp form
    "octave": ({"type": "conv", "out": 16, "stride": 2}, 36, [
        [{"type": "octave", "out": 32, "alpha": 0.25, "alpha_in": 0.0}, {"type": "octave", "out": 32, "alpha": 0.25}],
        [{"type": "octave", "out": 64, "stride": 2, "alpha": 0.5, "alpha_in": 0.25, "expansion": 2},
         {"type": "octave", "out": 64, "alpha": 0.5, "expansion": 2}],
        [{"type": "octave", "out": 64, "stride": 2, "alpha": 0.0, "alpha_in": 0.5}]]),
    "eesp": ({"type": "conv", "out": 16, "stride": 2, "act": "prelu"}, 32, [
        [{"type": "eesp", "out": 32, "stride": 2, "r_lim": 13}, {"type": "eesp", "out": 32, "repeat": 2}],
        [{"type": "eesp", "out": 32, "stride": 2, "r_lim": 5}, {"type": "eesp", "out": 48, "K": 2},
         {"type": "eesp", "out": 64, "unit": "expand"}]]),
}


def small(family: str) -> dict:
    stem, resolution, stages = SMALL[family]
    return {"format": "nas-genotype/1", "name": f"small_{family}", "input": {"resolution": resolution},
            "stem": stem, "stages": [{"blocks": s} for s in stages], "head": {"num_classes": 10, "dropout": 0.2}}


@pytest.mark.parametrize("family", NEW)
def test_onnx_export_matches_onnxruntime(family, tmp_path, capsys):
    g = parse_genotype(small(family))
    check_onnx_round_trip(g, tmp_path, capsys, g.resolution)


@pytest.mark.parametrize("family", NEW)
def test_latency_parts_show_and_measurement(family, tmp_path, capsys):
    check_parts_show_and_latency(parse_genotype(small(family)), family, tmp_path, capsys)
