"""timm arch_def export/import: lossless round trips, timm's own definitions, one-line errors."""

from __future__ import annotations

import json
import shlex

import pytest
import torch

from nas.cli import main
from nas.export.onnx import timm_snippet
from nas.export.timm.convert import genotype_to_timm, timm_to_genotype
from nas.export.timm.grammar import TimmArchError, decode_block, encode_block
from searchspace import build_model, load_genotype, zoo_names

torch.set_num_threads(1)
MBCONV_ZOO = [n for n in zoo_names() if all(b.type == "mbconv" for s in load_genotype(f"zoo:{n}").stages for b in s)]
REQUIRED = ("efficientnet_b0", "mobilenet_v2", "mnasnet1_0", "mobilenet_v3_large")

# timm's own definitions (timm/models/efficientnet.py, mobilenetv3.py) and the settings of their _gen_* helpers
TIMM_EFFICIENTNET_B0 = [["ds_r1_k3_s1_e1_c16_se0.25"], ["ir_r2_k3_s2_e6_c24_se0.25"], ["ir_r2_k5_s2_e6_c40_se0.25"],
                        ["ir_r3_k3_s2_e6_c80_se0.25"], ["ir_r3_k5_s1_e6_c112_se0.25"], ["ir_r4_k5_s2_e6_c192_se0.25"],
                        ["ir_r1_k3_s1_e6_c320_se0.25"]]
TIMM_MNASNET_B1 = [["ds_r1_k3_s1_c16_noskip"], ["ir_r3_k3_s2_e3_c24"], ["ir_r3_k5_s2_e3_c40"], ["ir_r3_k5_s2_e6_c80"],
                   ["ir_r2_k3_s1_e6_c96"], ["ir_r4_k5_s2_e6_c192"], ["ir_r1_k3_s1_e6_c320_noskip"]]
TIMM_MOBILENETV3_LARGE = [["ds_r1_k3_s1_e1_c16_nre"], ["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"],
                          ["ir_r3_k5_s2_e3_c40_se0.25_nre"],
                          ["ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"],
                          ["ir_r2_k3_s1_e6_c112_se0.25"], ["ir_r3_k5_s2_e6_c160_se0.25"], ["cn_r1_k1_s1_c960"]]
TIMM_MOBILENETV1 = [["dsa_r1_k3_s1_c64"], ["dsa_r2_k3_s2_c128"], ["dsa_r2_k3_s2_c256"], ["dsa_r6_k3_s2_c512"],
                    ["dsa_r2_k3_s2_c1024"]]
MOBILENETV3_SETTINGS = {"model": "mobilenetv3", "stem": 16, "act": "hard_swish", "se_gate": "hard_sigmoid",
                        "se_act": "relu", "se_divisor": 8, "explicit_mid": True, "dropout": 0.2}


SE = {"se": 0.25, "se_from": "input", "se_divisor": 1, "se_act": "swish", "gate": "sigmoid"}
FUSED = {  # EfficientNetV2-like: cn (fused, expansion 1), er (fused), ir with SE, a relu override
    "format": "nas-genotype/1", "name": "fused", "stem": {"type": "conv", "out": 24, "act": "swish"},
    "stages": [
        {"blocks": [{"type": "mbconv", "out": 24, "repeat": 2, "fused": True, "expand": 1.0, "act": "swish"}]},
        {"blocks": [{"type": "mbconv", "out": 48, "repeat": 2, "stride": 2, "fused": True, "expand": 4.0,
                     "act": "swish"}]},
        {"blocks": [{"type": "mbconv", "out": 64, "repeat": 2, "stride": 2, "fused": True, "expand": 4.0,
                     "act": "swish", **SE}]},
        {"blocks": [{"type": "mbconv", "out": 128, "repeat": 3, "stride": 2, "expand": 4.0, "act": "swish", **SE},
                    {"type": "mbconv", "out": 128, "kernel": 5, "expand": 6.0, "act": "relu", **SE}]}],
    "head": {"conv": 1280, "act": "swish"},
}


def genotype_of(name: str):
    return load_genotype(FUSED) if name == "fused" else load_genotype(f"zoo:{name}")


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_required_zoo_networks_are_mbconv() -> None:
    assert set(REQUIRED) <= set(MBCONV_ZOO)


@pytest.mark.parametrize("name", MBCONV_ZOO + ["fused"])
def test_round_trip_is_lossless(name: str) -> None:
    genotype = genotype_of(name)
    arch = genotype_to_timm(genotype)
    if name == "fused":
        assert arch.arch_def[:2] == [["cn_r2_k3_s1_c24_skip"], ["er_r2_k3_s2_e4_c48"]]
        assert arch.arch_def[3][1] == "ir_r1_k5_s1_e6_c128_se0.25_nre"
    back = timm_to_genotype(arch.arch_def, arch.settings)
    assert back.hash() == genotype.hash()
    for stage in arch.arch_def:
        for text in stage:
            assert encode_block(decode_block(text)) == text


def test_round_trip_through_the_cli(tmp_path, capsys) -> None:
    assert main(["export", "zoo:mobilenet_v3_large", "--format", "timm", "-o", str(tmp_path / "a.json")]) == 0
    assert main(["import", "timm", str(tmp_path / "a.json"), "-o", str(tmp_path / "g.yaml")]) == 0
    assert load_genotype(tmp_path / "g.yaml").hash() == load_genotype("zoo:mobilenet_v3_large").hash()
    capsys.readouterr()
    assert main(["export", "zoo:efficientnet_b3", "--format", "timm"]) == 0
    command = capsys.readouterr().out.strip().splitlines()[-1].removeprefix("# ")
    argv = shlex.split(command)
    assert argv[:3] == ["nas", "import", "timm"]
    assert main([*argv[1:], "-o", str(tmp_path / "b3.yaml")]) == 0
    assert load_genotype(tmp_path / "b3.yaml").hash() == load_genotype("zoo:efficientnet_b3").hash()


def test_timm_definitions_import_as_the_zoo_networks() -> None:
    b0 = timm_to_genotype(TIMM_EFFICIENTNET_B0, {"act": "swish", "dropout": 0.2, "scaled_resolution": 224})
    assert b0.hash() == load_genotype("zoo:efficientnet_b0").hash()
    mnasnet = timm_to_genotype(TIMM_MNASNET_B1, {"dropout": 0.2})
    assert mnasnet.hash() == load_genotype("zoo:mnasnet1_0").hash()
    v1 = timm_to_genotype(TIMM_MOBILENETV1, {"act": "relu6", "num_features": 0})
    assert v1.hash() == load_genotype("zoo:mobilenetv1_100").hash()
    # timm groups MobileNetV3's stages differently and gives one string to blocks of different mid widths
    mv3 = timm_to_genotype(TIMM_MOBILENETV3_LARGE, MOBILENETV3_SETTINGS)
    assert params(build_model(mv3)) == params(build_model("zoo:mobilenet_v3_large")) == 5_483_032


def one_line_error(argv: list[str], capsys) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("arch_def, message", [
    ("[['ir_r2_k3']]", "'ir_r2_k3': missing option s (stride)"),
    ("[['xx_r1_k3_s1_c16']]", "unknown block type 'xx'"),
    ("[['uir_r1_k3_s1_c16']]", "uir (universal inverted residual) has no mbconv equivalent"),
    ("[['ir_r1_k3_s1_e6_c32_a3']]", "option 'a3' is not supported"),
    ("[['ir_r1_k3_s1_e6_c32_nmi']]", "unknown activation 'nmi'"),
    ("[['ir_r1_k3_s1_e1_c32']]", "kind is ds here but timm's builder gives ir"),
    ("[['ir_r1_k3_s1_e6_c32', 'ir_r1_k3_s2_e6_c32']]", "arch_def[0][1] 'ir_r1_k3_s2_e6_c32'"),
    ("[['ds_r1_k4_s1_c32']]", "stages[0].blocks[0].kernel: 4 is not one of 3, 5, 7"),
    ("[ir_r1]", "not a Python/JSON list literal"),
    ("[[]]", "arch_def[0]: expected a non-empty list of block strings"),
])
def test_bad_arch_def_gives_one_line(arch_def: str, message: str, capsys) -> None:
    assert message in one_line_error(["import", "timm", arch_def], capsys)


def test_noskip_imports_as_skip_false_where_a_residual_would_fit() -> None:
    # timm's noskip (and dsa, and cn without _skip) give no residual: mbconv says skip: false, but only
    # on entries where a residual would fit, so genotypes without one keep their hash
    g = timm_to_genotype([["ds_r1_k3_s1_c32_noskip"], ["ds_r1_k3_s1_c16_noskip"], ["cn_r2_k3_s2_c24"]], {})
    entries = [stage[0].params for stage in g.stages]
    assert [p["skip"] for p in entries] == [False, True, False]
    assert "skip" not in g.to_dict()["stages"][1]["blocks"][0]
    assert [b.residual for b in build_model(g).stages[0]] == [False]
    back = timm_to_genotype(genotype_to_timm(g).arch_def, genotype_to_timm(g).settings)
    assert back.hash() == g.hash()


def test_project_act_beyond_dsa_is_refused(capsys) -> None:
    data = load_genotype("zoo:mobilenet_v2").to_dict()
    data["stages"][1]["blocks"][0]["project_act"] = True
    with pytest.raises(TimmArchError, match=r"stages\[1\].blocks\[0\].project_act: true has a timm equivalent "
                                            r"only on a depthwise-separable block .* timm's ir"):
        genotype_to_timm(load_genotype(data))


def test_inexpressible_genotypes_name_the_field(capsys) -> None:
    for name in ("shufflenet_v2_x0_5", "resnet18"):
        if name in zoo_names():
            err = one_line_error(["export", f"zoo:{name}", "--format", "timm"], capsys)
            family = load_genotype(f"zoo:{name}").stages[0][0].type
            assert f"stages[0].blocks[0].type: {family} cannot be expressed as a timm arch_def; only mbconv" in err
    err = one_line_error(["export", "zoo:mobilenet_v3_large", "--format", "timm", "--width", "0.75"], capsys)
    assert "stages[1].blocks[0] (block 0 of stage 1): mid is 48 here but timm's builder gives 64" in err
    err = one_line_error(["export", "zoo:mobilenet_v3_large", "--format", "timm", "--depth", "1.3"], capsys)
    assert "scaling.depth: 1.3 gives stages[1] 4 blocks here but 3 in timm" in err
    base = load_genotype("zoo:mobilenet_v2").to_dict()
    cases = [
        (("stages", 3, "blocks", 0, "act"), "identity", "stages[3].blocks[0].act: identity has no timm"),
        (("stages", 1, "blocks", 0, "mid"), 96, "stages[0].blocks[0].mid: null while stages[1].blocks[0]"),
        (("head", "act"), "relu", "head.act: relu differs from stem.act relu6"),
        (("stages", 2, "blocks", 0, "se_from"), "input", "stages[2].blocks[0].se_from: input would come back"),
    ]
    for (*keys, last), value, message in cases:
        data = json.loads(json.dumps(base))
        node = data
        for key in keys:
            node = node[key]
        node[last] = value
        with pytest.raises(TimmArchError, match=message.replace("[", r"\[").replace("]", r"\]")):
            genotype_to_timm(load_genotype(data))
    data = json.loads(json.dumps(base))
    data["stages"][1]["blocks"].append({"type": "mbconv", "out": 24, "stride": 2, "expand": 6.0, "act": "relu6"})
    with pytest.raises(TimmArchError, match=r"stages\[1\]\.blocks\[1\]\.stride: 2 on a block that does not open"):
        genotype_to_timm(load_genotype(data))


# ---- with timm itself (skipped when timm is not importable) ----

def _random_state(model: torch.nn.Module) -> None:
    torch.manual_seed(0)
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            value.copy_(torch.rand_like(value) + 0.5 if "running_var" in name else torch.randn_like(value) * 0.1)


@pytest.mark.parametrize("name", REQUIRED + ("mobilenet_v3_small", "efficientnet_b3", "fused"))
def test_timm_builds_the_same_network(name: str) -> None:
    pytest.importorskip("timm")
    genotype = genotype_of(name)
    namespace: dict = {}
    exec(timm_snippet(genotype_to_timm(genotype), genotype), namespace)  # the printed code, as a user runs it
    theirs = namespace["model"].eval()
    ours = build_model(genotype).eval()
    assert params(theirs) == params(ours)
    # same layers in the same order: copy timm's tensors into ours and compare outputs
    _random_state(theirs)
    own = ours.state_dict()
    assert len(own) == len(theirs.state_dict())
    ours.load_state_dict({k: v.reshape(own[k].shape) for k, v in zip(own, theirs.state_dict().values(), strict=True)})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-4, rtol=1e-4)
