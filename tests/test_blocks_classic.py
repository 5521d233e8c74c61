"""The classic families of issue 14: xception, fire, plain, shuffle_v1; SE-ResNet, MobileNetV1 and
Fused-MBConv through basic / bottleneck / mbconv; the stem and head options VGG, SqueezeNet and
Xception need. Parameter counts below are worked out by hand from the layer shapes."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

import predictors.latency.parts as features
from nas.cli import main
from predictors.cost import count_macs, count_params
from searchspace import GenotypeError, build_model, load_genotype, parse_genotype, save_genotype
from searchspace.blocks import get_family
from searchspace.resolve import resolve
from searchspace.space import space_from_dict
from tests.block_helpers import make_block
from tests.classic_members import MEMBERS

CLASSIC = ("xception", "fire", "plain", "shuffle_v1")


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run(block: nn.Module, in_ch: int, size: int = 9) -> torch.Tensor:
    with torch.no_grad():
        return block.eval()(torch.randn(2, in_ch, size, size))


def one_line(make) -> str:
    with pytest.raises(GenotypeError) as info:
        make()
    assert "\n" not in str(info.value)
    return str(info.value)


# ---------------------------------------------------------------------------------------------- plain


def test_plain_counts_and_pool_after_the_conv() -> None:
    # conv 8*16*9 + bias 16 + BN 2*16
    assert params(make_block("plain", 8, 16, 1, bias=True)) == 1152 + 16 + 32
    assert params(make_block("plain", 8, 16, 1, norm=False)) == 1152
    block = make_block("plain", 8, 16, 2)
    assert isinstance(block[-1], nn.MaxPool2d) and block[-1].kernel_size == 2
    assert run(block, 8).shape == (2, 16, 4, 4)  # 9 -> 4: a 2x2 pool floors
    assert get_family("plain").output_size(9, 2) == 4 and get_family("plain").output_size(9, 1) == 9


# ----------------------------------------------------------------------------------------------- fire


def test_fire_counts_and_shapes() -> None:
    # squeeze 4 = 32 / 8, expand 16 + 16; SqueezeNet's convs have a bias and no BN
    block = make_block("fire", 16, 32, 1)
    assert params(block) == (16 * 4 + 4) + (4 * 16 + 16) + (4 * 16 * 9 + 16)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    normed = make_block("fire", 16, 32, 1, norm=True)
    assert params(normed) == (16 * 4 + 8) + (4 * 16 + 32) + (4 * 16 * 9 + 32)
    assert run(block, 16).shape == (2, 32, 9, 9)
    # stride 2 max-pools first (3x3, ceil mode): 9 -> 4, 8 -> 4
    assert run(make_block("fire", 16, 32, 2), 16).shape == (2, 32, 4, 4)
    assert run(make_block("fire", 16, 32, 2), 16, 8).shape == (2, 32, 4, 4)
    assert [get_family("fire").output_size(s, 2) for s in (8, 9, 55)] == [4, 4, 27]
    wide = make_block("fire", 16, 32, 1, expand3x3=0.75)
    assert (wide.expand1x1[0].out_channels, wide.expand3x3[0].out_channels) == (8, 24)


def test_fire_expand_share_must_leave_both_convs() -> None:
    message = one_line(lambda: make_block("fire", 16, 8, 1, expand3x3=0.05))
    assert message.startswith("b.expand3x3: 0.05 of out 8 leaves the 1x1 expand 8 and the 3x3 expand 0 channels")


# ------------------------------------------------------------------------------------------- xception


def test_xception_counts() -> None:
    sep = lambda i, o: i * 9 + i * o + 2 * o  # noqa: E731  depthwise 3x3, pointwise, BN
    skip = 16 * 32 + 2 * 32
    assert params(make_block("xception", 16, 32, 2)) == sep(16, 32) + sep(32, 32) + skip
    assert params(make_block("xception", 16, 32, 2, grow_first=False)) == sep(16, 16) + sep(16, 32) + skip
    assert params(make_block("xception", 32, 32, 1, reps=3)) == 3 * sep(32, 32)  # identity skip
    assert params(make_block("xception", 16, 32, 1, reps=1, residual=False)) == sep(16, 32)


def test_xception_shapes_and_orders() -> None:
    assert run(make_block("xception", 16, 32, 2), 16).shape == (2, 32, 5, 5)
    pre = make_block("xception", 16, 16, 1, first_act=False)
    assert isinstance(pre.rep[0], nn.Sequential)  # no act before the first separable conv
    post = make_block("xception", 16, 32, 1, reps=1, residual=False, preact=False)
    assert [type(m) for m in post.rep] == [type(post.rep[0]), nn.BatchNorm2d, nn.ReLU] and post.skip is None


def test_xception_first_act_does_not_overwrite_the_skip_input() -> None:
    block = make_block("xception", 16, 16, 1).eval()
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        expected = block.rep(x.clone()) + x
        assert torch.equal(block(x.clone()), expected)


# ----------------------------------------------------------------------------------------- shuffle_v1


def test_shuffle_v1_counts() -> None:
    # ShuffleNetV1 g = 3, first unit: 24 -> 240, bottleneck 60, ungrouped first 1x1, branch 240 - 24
    first = make_block("shuffle_v1", 24, 240, 2, groups=3, group_in=False)
    assert params(first) == (24 * 60 + 120) + (60 * 9 + 120) + (20 * 216 + 432)
    unit = make_block("shuffle_v1", 240, 240, 1, groups=3)
    assert params(unit) == (80 * 60 + 120) + (60 * 9 + 120) + (20 * 240 + 480)
    # stride 2 with out <= in: the pooled input is projected and added
    fallback = make_block("shuffle_v1", 32, 32, 2, groups=4)
    assert params(fallback) == (8 * 8 + 16) + (8 * 9 + 16) + (2 * 32 + 64) + (32 * 32 + 64)


def test_shuffle_v1_shapes_and_concat() -> None:
    block = make_block("shuffle_v1", 24, 240, 2, groups=3, group_in=False).eval()
    x = torch.randn(2, 24, 8, 8).relu()
    with torch.no_grad():
        y = block(x)
        assert y.shape == (2, 240, 4, 4)
        assert torch.allclose(y[:, :24], nn.AvgPool2d(3, 2, 1)(x))  # the pooled input comes first
    assert run(make_block("shuffle_v1", 48, 48, 1, groups=4), 48).shape == (2, 48, 9, 9)
    assert run(make_block("shuffle_v1", 32, 32, 2, groups=4), 32).shape == (2, 32, 5, 5)
    assert make_block("shuffle_v1", 32, 32, 1, groups=8).reduce[0].out_channels == 8  # 32 / 4, a multiple of 8
    assert make_block("shuffle_v1", 24, 24, 1, groups=8).reduce[0].out_channels == 8  # 6 rounded up to 8


@pytest.mark.parametrize("in_ch, out, stride, params_, message", [
    (24, 48, 1, {}, "b.out: 48 differs from the block input width 24; a stride-1 unit adds its input"),
    (20, 60, 2, {"groups": 3}, "b.groups: 3 does not divide the block input width 20; use other groups or "
                               "group_in: false"),
    (24, 40, 2, {"groups": 3, "group_in": False}, "b.groups: 3 does not divide the 16 channels the branch "
                                                  "makes (out 40 - in 24)"),
])
def test_shuffle_v1_errors_name_the_field(in_ch, out, stride, params_, message) -> None:
    assert one_line(lambda: make_block("shuffle_v1", in_ch, out, stride, **params_)).startswith(message)


# ------------------------------------------------------------------ SE-ResNet, MobileNetV1, Fused-MBConv


def test_se_round_timm_is_nearest() -> None:
    # out 176 / 16 = 11: make_divisible gives 16 (8 would lose over 10%), timm's SEModule gives 8
    tv, timm = (make_block("basic", 176, 176, 1, se=0.0625, se_round=r) for r in ("make_divisible", "timm"))
    assert tv.body[-1].reduce.out_channels == 16 and timm.body[-1].reduce.out_channels == 8
    assert params(tv) - params(timm) == (176 + 1 + 176) * 8
    b = make_block("bottleneck", 64, 256, 1, se=0.0625, se_round="timm")
    assert b.body[-1].reduce.out_channels == 16  # seresnet50's first block


def test_mbconv_skip_and_project_act() -> None:
    plain = make_block("mbconv", 32, 32, 1, expand=1.0)
    v1 = make_block("mbconv", 32, 32, 1, expand=1.0, act="relu6", skip=False, project_act=True)
    assert plain.residual and not v1.residual
    assert isinstance(plain.body[-1][-1], nn.Identity) and isinstance(v1.body[-1][-1], nn.ReLU6)
    assert params(v1) == params(plain) == (32 * 9 + 64) + (32 * 32 + 64)


def test_new_parameters_leave_old_genotypes_and_hashes_alone() -> None:
    # hashes of the zoo before the new parameters existed (and so of any genotype saved then)
    before = {"resnet50": "3315ffa06585", "efficientnet_b0": "3c90f70b6f64", "shufflenet_v2_x1_0": "41594191fb42",
              "ese_vovnet39b": "a94467b7201e", "resnest50d": "16a1e39ba137", "mobilenet_v3_large": "bda4982f2d71"}
    assert {n: load_genotype(f"zoo:{n}").hash() for n in before} == before
    resnet = load_genotype("zoo:resnet50").to_dict()
    assert "se_round" not in resnet["stages"][0]["blocks"][0]
    assert set(resnet["head"]) == {"conv", "hidden", "act", "pool", "dropout", "num_classes"}
    assert set(resnet["stem"]) == {"type", "out", "kernel", "stride", "act", "pool"}
    se = load_genotype("zoo:seresnet50").to_dict()
    assert se["stages"][0]["blocks"][0]["se_round"] == "timm"
    assert load_genotype("zoo:vgg16_bn").to_dict()["head"]["hidden_layers"] == 2
    changed = copy.deepcopy(resnet)
    changed["stages"][0]["blocks"][0]["se_round"] = "timm"  # no SE: same network, but a different genotype
    assert parse_genotype(changed).hash() != load_genotype("zoo:resnet50").hash()


# -------------------------------------------------------------------------------------- stem and head


def test_stem_sizes() -> None:
    sizes = {n: resolve(load_genotype(f"zoo:{n}")).stem_size for n in ("squeezenet1_1", "legacy_xception", "vgg16_bn")}
    assert sizes == {"squeezenet1_1": 55, "legacy_xception": 147, "vgg16_bn": 224}  # (224-3)//2+1 -> ceil pool
    vgg11 = MEMBERS["vgg11_bn"][0]()
    assert resolve(vgg11).stem_size == 112 and vgg11.stem["pool"] == "max2"
    stem = build_model("zoo:legacy_xception").stem
    assert [m[0].out_channels for m in stem] == [32, 64] and stem[0][0].padding == (0, 0)
    squeeze = build_model("zoo:squeezenet1_1").stem
    assert squeeze[0][0].bias is not None and isinstance(squeeze[0][1], nn.Identity) and squeeze[1].ceil_mode


def test_stem_too_small_for_valid_padding() -> None:
    raw = load_genotype("zoo:squeezenet1_1").to_dict()
    raw["input"]["resolution"] = 8
    raw["stem"]["kernel"] = 7
    assert one_line(lambda: parse_genotype(raw)) == ("stem: leaves a 1x1 map at resolution 8; use a larger "
                                                      "resolution or padding same")


def _head_genotype(**head) -> dict:
    return {"format": "nas-genotype/1", "input": {"resolution": 32},
            "stem": {"type": "conv", "out": 8, "stride": 2},
            "stages": [{"blocks": [{"type": "plain", "out": 8, "stride": 2}]}],
            "head": {"num_classes": 10, **head}}


def test_head_pool_size_and_hidden_layers() -> None:
    model = build_model(_head_genotype(pool_size=7, hidden=32, hidden_layers=2, dropout=0.5))
    # 8 channels x 7 x 7 -> 32 -> 32 -> 10, a dropout after each hidden layer
    assert params(model.head) == (392 * 32 + 32) + (32 * 32 + 32) + (32 * 10 + 10)
    assert sum(isinstance(m, nn.Dropout) for m in model.head.modules()) == 2
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_head_conv_classifier() -> None:
    model = build_model(_head_genotype(classifier="conv", dropout=0.5)).eval()
    assert params(model.head) == 8 * 10 + 10
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features_ = model.forward_features(x)
        expected = model.head.classifier(features_).relu().mean((2, 3))
        assert torch.allclose(model(x), expected, atol=1e-6)


@pytest.mark.parametrize("head, message", [
    ({"classifier": "conv", "hidden": 16}, "head.hidden: 16 needs classifier linear; the conv classifier "
                                           "(SqueezeNet) comes before a global pool, so use hidden 0"),
    ({"classifier": "conv", "pool_size": 2}, "head.pool_size: 2 needs classifier linear"),
    ({"hidden_layers": 2}, "head.hidden_layers: 2 needs hidden > 0 (their width)"),
    ({"classifier": "dense"}, "head.classifier: dense is not one of linear, conv"),
])
def test_head_errors_name_the_field(head, message) -> None:
    assert one_line(lambda: parse_genotype(_head_genotype(**head))).startswith(message)


# ------------------------------------------------------------------------------- other family members


@pytest.mark.parametrize("name", list(MEMBERS))
def test_family_member_params_exact(name) -> None:
    make, reference, _ = MEMBERS[name]
    assert count_params(build_model(make())) == reference


@pytest.mark.parametrize("name", [n for n, (_, _, macs) in MEMBERS.items() if macs < 5e9])
def test_family_member_macs_exact(name) -> None:
    make, _, reference = MEMBERS[name]
    genotype = make()
    assert count_macs(build_model(genotype), genotype.resolution) == reference


def test_shufflenet_v1_g3_against_the_paper() -> None:
    genotype = load_genotype("zoo:shufflenet_v1_g3")
    model = build_model(genotype)
    widths = [resolve(genotype).blocks[i].args.out for i in (0, 4, 12)]
    assert widths == [240, 480, 960] and genotype.num_blocks() == 16
    assert count_macs(model, 224) == pytest.approx(140e6, rel=0.02)  # the paper's 140 MFLOPs (mult-adds)


# ShuffleNetV1 (stem, stage outputs, groups) -> the authors' table (megvii ShuffleNet-Series README):
# MFLOPs (multiply-adds) and millions of parameters, both rounded; their classifier has no bias
SHUFFLENET_V1 = {
    "1.0x g3": ((24, (240, 480, 960), 3), 138, 1.9),
    "1.0x g8": ((24, (384, 768, 1536), 8), 138, 2.4),
    "0.5x g3": ((12, (120, 240, 480), 3), 38, 0.7),
    "1.5x g3": ((24, (360, 720, 1440), 3), 292, 3.4),
    "2.0x g3": ((48, (480, 960, 1920), 3), 524, 5.4),
}


@pytest.mark.parametrize("name", list(SHUFFLENET_V1))
def test_shufflenet_v1_widths_and_groups_against_the_authors_table(name) -> None:
    (stem, outs, groups), mflops, mparams = SHUFFLENET_V1[name]
    raw = load_genotype("zoo:shufflenet_v1_g3").to_dict()
    raw["stem"]["out"] = stem
    for stage, out in zip(raw["stages"], outs, strict=True):
        for block in stage["blocks"]:
            block.update(out=out, groups=groups)
    model = build_model(parse_genotype(raw))
    assert round(count_macs(model, 224) / 1e6) == pytest.approx(mflops, abs=1)
    assert round((count_params(model) - 1000) / 1e6, 1) == mparams  # less our classifier bias


# ------------------------------------------------------------------- the space, export, latency, timm


def test_space_of_the_new_families_samples_valid_genotypes() -> None:
    space = space_from_dict({"types": list(CLASSIC)})
    seen = set()
    for seed in range(40):
        genotype = space.random_genotype(seed)
        seen |= {b.type for stage in genotype.stages for b in stage}
    assert seen == set(CLASSIC)
    mixed = space_from_dict({"types": ["shuffle_v1", "mbconv", "plain", "xception"]})
    assert all(mixed.random_genotype(s).num_blocks() > 0 for s in range(20))


SMALL = {
    "xception": {"stem": {"type": "conv", "mid": 8, "out": 16, "stride": 2, "padding": "valid"},
                 "stages": [[{"type": "xception", "out": 24, "stride": 2, "first_act": False}],
                            [{"type": "xception", "out": 24, "repeat": 2, "reps": 3}],
                            [{"type": "xception", "out": 32, "stride": 2, "grow_first": False},
                             {"type": "xception", "out": 48, "reps": 1, "residual": False, "preact": False}]]},
    "fire": {"stem": {"type": "conv", "out": 16, "stride": 2, "padding": "valid", "bias": True, "norm": False,
                      "pool": "max_ceil"},
             "stages": [[{"type": "fire", "out": 32, "repeat": 2}], [{"type": "fire", "out": 64, "stride": 2,
                                                                      "norm": True}]],
             "head": {"classifier": "conv", "dropout": 0.5}},
    "plain": {"stem": {"type": "conv", "out": 16, "stride": 1, "bias": True},
              "stages": [[{"type": "plain", "out": 16, "stride": 2, "bias": True}],
                         [{"type": "plain", "out": 32}, {"type": "plain", "out": 32, "stride": 2, "kernel": 5}]],
              "head": {"pool_size": 2, "hidden": 32, "hidden_layers": 2, "dropout": 0.5}},
    "shuffle_v1": {"stem": {"type": "conv", "out": 24, "stride": 2, "pool": "max"},
                   "stages": [[{"type": "shuffle_v1", "out": 48, "stride": 2, "group_in": False},
                               {"type": "shuffle_v1", "out": 48}],
                              [{"type": "shuffle_v1", "out": 96, "stride": 2, "groups": 4}],
                              [{"type": "shuffle_v1", "out": 96, "stride": 2, "groups": 2}]]},
}


def small_genotype(family: str):
    spec = SMALL[family]
    return parse_genotype({"format": "nas-genotype/1", "name": f"small_{family}", "input": {"resolution": 64},
                           "stem": spec["stem"], "stages": [{"blocks": s} for s in spec["stages"]],
                           "head": {"num_classes": 10, **spec.get("head", {})}})


def randomized(model: nn.Module) -> nn.Module:
    """Random BN statistics and affine terms, so the exported graph is checked on O(1) outputs."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
        elif isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
            m.bias.data.normal_(0, 0.1)
    return model.eval()


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def check_onnx_round_trip(genotype, tmp_path, capsys, size: int) -> None:
    """``nas export --format onnx`` of ``genotype`` with random BN weights: its own check within 1e-4, and
    onnxruntime's output on 3 random ``size`` x ``size`` images within 1e-4 of PyTorch's (outputs O(1))."""
    import onnxruntime

    model = randomized(build_model(genotype))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    path = tmp_path / "m.onnx"
    code, out, err = cli(["export", str(save_genotype(genotype, tmp_path / "g.yaml")), "--format", "onnx", "-o",
                          str(path), "--weights", str(tmp_path / "w.pt"), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["max_abs_diff"] <= 1e-4
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, size, size)
    (y,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        reference = model(x)
    assert reference.abs().max() > 0.1 and (torch.from_numpy(y) - reference).abs().max().item() <= 1e-4


def check_parts_show_and_latency(genotype, family: str, tmp_path, capsys) -> None:
    """Every block of ``genotype`` is a ``family`` part whose counted params add up to the network's;
    ``nas show`` names the family and its params; ``nas latency`` measures it."""
    parts = features.network_parts(genotype)
    assert [p.group for p in parts[1:-1]] == [family] * genotype.num_blocks()
    costs = features.CostTable(str(tmp_path / "costs.jsonl"))
    assert sum(costs.cost(p).params for p in parts) == count_params(build_model(genotype))
    path = save_genotype(genotype, tmp_path / "g.yaml")
    code, out, err = cli(["show", str(path), "--json"], capsys)
    assert code == 0, err
    assert family in out and str(count_params(build_model(genotype))) in out.replace(",", "")
    code, out, err = cli(["latency", str(path), "--threads", "1", "--warmup", "1", "--reps", "3", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["measured_ms"] > 0


@pytest.mark.parametrize("family", CLASSIC)
def test_onnx_export_matches_onnxruntime(family, tmp_path, capsys) -> None:
    check_onnx_round_trip(small_genotype(family), tmp_path, capsys, 64)


@pytest.mark.parametrize("family", CLASSIC)
def test_timm_export_refuses_the_family_in_one_line(family, tmp_path, capsys) -> None:
    path = save_genotype(small_genotype(family), tmp_path / "g.yaml")
    code, out, err = cli(["export", str(path), "--format", "timm"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"stages[0].blocks[0].type: {family} cannot be expressed as a timm arch_def; only mbconv" in err


@pytest.mark.parametrize("family", CLASSIC)
def test_latency_parts_and_measurement(family, tmp_path, capsys) -> None:
    genotype = small_genotype(family)
    parts = features.network_parts(genotype)
    assert [p.group for p in parts[1:-1]] == [family] * genotype.num_blocks()
    costs = features.CostTable(str(tmp_path / "costs.jsonl"))
    assert sum(costs.cost(p).params for p in parts) == count_params(build_model(genotype))
    path = save_genotype(genotype, tmp_path / "g.yaml")
    code, out, err = cli(["latency", str(path), "--threads", "1", "--warmup", "1", "--reps", "3", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["measured_ms"] > 0


@pytest.mark.parametrize("family", CLASSIC)
def test_show_lists_the_family(family, tmp_path, capsys) -> None:
    path = save_genotype(small_genotype(family), tmp_path / "g.yaml")
    code, out, err = cli(["show", str(path), "--json"], capsys)
    assert code == 0, err
    assert family in out and str(count_params(build_model(small_genotype(family)))) in out.replace(",", "")
