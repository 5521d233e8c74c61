"""dense, csp, darknet and preact: per-block counts by hand, shapes, errors, scaling, the space, exports.

Reference counts of the other family members were measured from torchvision 0.28 / timm 1.0.31
with experiments/reference_counts.py (params; MACs = flop_counter FLOPs / 2 at the resolution).
"""

from __future__ import annotations

import json

import optuna
import pytest
import torch
from block_helpers import genotype, make_block, randomize_bn
from csp_dense_members import MEMBERS

from nas.cli import main
from predictors.cost import count_macs, count_params
from predictors.latency.parts import genotype_cost, network_parts
from predictors.latency.space_parts import space_parts
from searchspace import GenotypeError, build_model, load_genotype, parse_genotype, save_genotype, with_scaling
from searchspace.resolve import resolve
from searchspace.space import RandomTrial, space_from_dict

NEW = ("dense", "csp", "darknet", "preact")


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def bn(c: int) -> int:
    return 2 * c


# ------------------------------------------------------------------------------------- one block


def test_darknet_block_counts_and_shape():
    # stride 2: 3x3 conv 16->32 + BN, then 1x1 32->16 + BN, 3x3 16->32 + BN
    assert params(make_block("darknet", 16, 32, 2)) == 16 * 32 * 9 + bn(32) + 32 * 16 + bn(16) + 16 * 32 * 9 + bn(32)
    # stride 1, in == out: no downsampling conv
    block = make_block("darknet", 32, 32, 1, bottle_ratio=1.0)
    assert params(block) == 32 * 32 + bn(32) + 32 * 32 * 9 + bn(32)
    x = torch.randn(2, 32, 9, 9)
    assert block(x).shape == (2, 32, 9, 9)
    assert make_block("darknet", 16, 32, 2)(torch.randn(2, 16, 9, 9)).shape == (2, 32, 5, 5)


def test_dense_block_counts_shape_and_concatenation():
    # out 40 = 24 (transition 16 -> 24, 2x2 pool) + 2 layers of growth 8 (1x1 to 4 * 8, 3x3 to 8)
    block = make_block("dense", 16, 40, 2, layers=2, growth=8, bn_size=4)
    transition = bn(16) + 16 * 24
    layer1 = bn(24) + 24 * 32 + bn(32) + 32 * 8 * 9
    layer2 = bn(32) + 32 * 32 + bn(32) + 32 * 8 * 9
    assert params(block) == transition + layer1 + layer2
    assert block.eval()(torch.randn(2, 16, 9, 9)).shape == (2, 40, 4, 4)  # avg pool floors 9 -> 4
    # stride 1 and in == out - layers * growth: no transition, the input passes through unchanged
    block = make_block("dense", 24, 40, 1, layers=2, growth=8).eval()
    x = torch.randn(2, 24, 6, 6)
    y = block(x)
    assert y.shape == (2, 40, 6, 6) and torch.equal(y[:, :24], x)
    # growth null: max(1, int(out * share / layers)) = int(32 * 0.5 / 2) = 8, so the layers start from 16
    block = make_block("dense", 16, 32, 1, layers=2, share=0.5)
    assert params(block) == sum(bn(c) + c * 32 + bn(32) + 32 * 8 * 9 for c in (16, 24))


def test_preact_block_counts_and_shapes():
    # bottleneck, stride 2: bare 1x1 projection; BN-act + 1x1, BN-act + 3x3, BN-act + 1x1; mid make_divisible(64 / 4)
    block = make_block("preact", 16, 64, 2)
    assert params(block) == 16 * 64 + bn(16) + 16 * 16 + bn(16) + 16 * 16 * 9 + bn(16) + 16 * 64
    assert block(torch.randn(2, 16, 9, 9)).shape == (2, 64, 5, 5)
    block = make_block("preact", 32, 32, 1, form="basic").eval()
    assert params(block) == bn(32) + 32 * 32 * 9 + bn(32) + 32 * 32 * 9
    assert block.shortcut is None  # identity: the raw input is added, not its pre-activation


def test_csp_block_counts_and_shape():
    # cspdarknet-style stage: 3x3 s2 16->32 (down_growth), 1x1 32->64, split 32/32, one darknet block on
    # the second half (32 -> 32, 1x1 to 16), transition b 32->32, concat, transition 64->32
    block = make_block("csp", 16, 32, 2, inner="darknet", expand=2.0, down_growth=True)
    darknet = 32 * 16 + bn(16) + 16 * 32 * 9 + bn(32)
    assert params(block) == (16 * 32 * 9 + bn(32)) + (32 * 64 + bn(64)) + darknet + (32 * 32 + bn(32)) + (
        64 * 32 + bn(32))
    assert block(torch.randn(2, 16, 9, 9)).shape == (2, 32, 5, 5)
    # stride 1, a 2-group bottleneck from the 16-channel half to 32 (projection shortcut): no down conv
    block = make_block("csp", 32, 32, 1, inner="bottleneck", groups=2, expansion=2)
    bottleneck = (16 * 32 + bn(32)) + (16 * 32 * 9 + bn(32)) + (32 * 32 + bn(32)) + (16 * 32 + bn(32))
    assert params(block) == (32 * 32 + bn(32)) + bottleneck + (32 * 16 + bn(16)) + (32 * 32 + bn(32))
    assert block.blocks[0].body[1][0].groups == 2  # the wrapper's groups reach the inner 3x3 conv
    assert block(torch.randn(2, 32, 7, 7)).shape == (2, 32, 7, 7)


def test_csp_runs_the_blocks_on_the_second_half_and_passes_the_first():
    block = make_block("csp", 8, 8, 1, inner="dense", expand=2.0, layers=2).eval()
    seen = {}
    for name in ("conv_exp", "blocks", "conv_transition_b", "conv_transition"):
        getattr(block, name).register_forward_hook(lambda m, i, o, name=name: seen.update({name: (i[0], o)}))
    with torch.no_grad():
        block(torch.randn(1, 8, 5, 5))
    expanded, transition_in = seen["conv_exp"][1], seen["conv_transition"][0]
    assert expanded.shape[1] == 16 and torch.equal(seen["blocks"][0], expanded[:, 8:])
    assert torch.equal(transition_in, torch.cat([expanded[:, :8], seen["conv_transition_b"][1]], dim=1))


# -------------------------------------------------------------------------------------- errors


def entry(**fields) -> dict:
    return genotype([{"out": 16, **fields}])


@pytest.mark.parametrize("fields, message", [
    ({"type": "csp", "inner": "mbconv"},
     "stages[0].blocks[0].inner: mbconv is not one of bottleneck, darknet, dense, basic"),
    ({"type": "csp", "inner": "darknet", "growth": 8},
     "stages[0].blocks[0].growth: unknown field; allowed fields are type, repeat, out, stride, inner, blocks, "
     "expand, block_ratio, down_growth, cross_linear, groups, act, bottle_ratio"),
    ({"type": "csp", "out": 12, "expand": 0.75},
     "stages[0].blocks[0].expand: 0.75 gives round(12 * 0.75) = 9 channels; the expansion is split in two "
     "halves, so it needs an even width of at least 2"),
    ({"type": "csp", "stride": 2, "groups": 3},
     "stages[0].blocks[0].groups: 3 does not divide the stride-2 conv's widths (16 -> 16); use a divisor of both"),
    ({"type": "csp", "inner": "dense", "layers": 16, "growth": 1},
     "stages[0].blocks[0].growth: 16 layers of growth 1 make 16 channels, leaving none of out 16 to start from; "
     "use fewer layers, a smaller growth or a larger out"),
    ({"type": "dense", "layers": 4, "growth": 4},
     "stages[0].blocks[0].growth: 4 layers of growth 4 make 16 channels, leaving none of out 16 to start from; "
     "use fewer layers, a smaller growth or a larger out"),
    ({"type": "dense", "out": 8, "layers": 8},
     "stages[0].blocks[0].layers: 8 layers of growth 1 make 8 channels, leaving none of out 8 to start from; "
     "use fewer layers, a smaller growth or a larger out"),
    ({"type": "darknet", "out": 8, "bottle_ratio": 0.05},
     "stages[0].blocks[0].bottle_ratio: 0.05 gives round(8 * 0.05) = 0 channels; use a larger bottle_ratio or out"),
    ({"type": "preact", "form": "wide"}, "stages[0].blocks[0].form: wide is not one of basic, bottleneck"),
])
def test_errors_name_the_field(fields, message):
    with pytest.raises(GenotypeError) as info:
        parse_genotype(entry(**fields))
    assert str(info.value) == message


# ------------------------------------------------------------------------- canonical form, scaling


def test_csp_entry_carries_its_inner_parameters():
    g = parse_genotype(entry(type="csp", inner="darknet"))
    block = g.to_dict()["stages"][0]["blocks"][0]
    assert block["inner"] == "darknet" and block["bottle_ratio"] == 0.5  # the inner default, filled in
    assert block["act"] == "leaky_relu" and "growth" not in block
    assert parse_genotype(g.to_dict()).hash() == g.hash()
    assert parse_genotype(entry(type="csp", inner="darknet", bottle_ratio=1.0)).hash() != g.hash()


def test_depth_scales_csp_blocks_not_repeats():
    net = resolve(with_scaling(load_genotype("zoo:cspresnet50"), depth=1.5))
    assert [b.args["blocks"] for b in net.blocks] == [5, 5, 8, 3]  # ceil(3, 3, 5, 2 * 1.5), one stage each
    assert count_params(build_model("zoo:cspresnet50", depth=1.5)) > count_params(build_model("zoo:cspresnet50"))
    # other families, dense included, stack more blocks
    assert len(resolve(with_scaling(load_genotype("zoo:darknet53"), depth=1.5)).blocks) == 2 + 3 + 12 + 12 + 6
    net = resolve(with_scaling(load_genotype("zoo:densenet121"), depth=1.2))
    assert [b.args["layers"] for b in net.blocks] == [6, 6, 12, 12, 24, 24, 16, 16]


def test_width_scales_growth():
    net = resolve(with_scaling(load_genotype("zoo:densenet121"), width=0.5))
    assert {b.args["growth"] for b in net.blocks} == {16}
    assert [b.args.out for b in net.blocks] == [128, 256, 512, 512]
    wrapped = parse_genotype(entry(type="csp", out=32, inner="dense", layers=2, growth=8))
    assert resolve(with_scaling(wrapped, width=2.0)).blocks[0].args["growth"] == 16  # inside a csp entry too
    model = build_model("zoo:densenet121", width=0.5, resolution=64).eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


# ------------------------------------------------------------------ other members of each family

@pytest.mark.parametrize("name", list(MEMBERS))
def test_other_family_members_have_the_reference_count(name):
    make, ref_params, _ = MEMBERS[name]
    assert count_params(build_model(make())) == ref_params


@pytest.mark.parametrize("name", ["resnetv2_18", "darknet17"])
def test_other_family_members_have_the_reference_macs(name):
    make, _, ref_macs = MEMBERS[name]
    g = make()
    assert count_macs(build_model(g), g.resolution) == ref_macs


# -------------------------------------------------------------------------------------- the space

def test_space_of_the_new_families_samples_valid_genotypes():
    space = space_from_dict({"types": ["csp", "dense", "darknet"]})
    seen_types, seen_inner = set(), set()
    for seed in range(150):
        g = space.random_genotype(seed)  # raises GenotypeError if the space sampled an invalid genotype
        for stage in g.stages:
            seen_types.add(stage[0].type)
            if stage[0].type == "csp":
                seen_inner.add(stage[0].params["inner"])
    assert seen_types == {"csp", "dense", "darknet"}
    assert seen_inner == {"bottleneck", "darknet", "dense"}
    for seed in range(40):
        assert {s[0].type for s in space_from_dict({"types": ["preact"]}).random_genotype(seed).stages} == {"preact"}


def test_csp_inner_values_are_searched_under_their_own_names():
    space = space_from_dict({"types": ["csp"], "params": {"csp": {"inner": ["dense"]}, "dense": {"bn_size": [2]}}})
    trial = RandomTrial(3)
    g = space.sample(trial)
    assert {stage[0].params["bn_size"] for stage in g.stages} == {2}  # the inner family's override applies
    assert {"s0_csp_inner", "s0_csp_dense_bn_size", "s0_csp_dense_layers", "s0_csp_dense_share"} <= set(trial.params)
    assert "s0_csp_dense_act" not in trial.params  # act is the wrapper's: s0_csp_act
    replay = space.sample(optuna.trial.FixedTrial(trial.params))
    assert replay.hash() == g.hash()


def test_space_size_counts_a_wrappers_inner_values():
    space = space_from_dict({
        "types": ["csp"], "stages": [{"stride": 2, "out": 16, "repeat": 1}],
        "params": {"csp": {"inner": ["darknet", "dense"], "blocks": [1], "expand": [1.0], "act": ["relu"]},
                   "darknet": {"bottle_ratio": [0.5, 1.0]}, "dense": {"layers": [2], "share": [0.5],
                                                                       "bn_size": [2, 4], "act": ["relu"]}}})
    assert space.size() == 2 + 2
    assert len({space.random_genotype(seed).hash() for seed in range(100)}) == 4


def test_latency_table_parts_cover_every_csp_the_space_samples():
    space = space_from_dict({
        "types": ["csp"], "resolution": 32, "stem": {"type": "conv", "out": 8, "stride": 2},
        "stages": [{"stride": 2, "out": [16], "repeat": [1, 2]}, {"stride": 2, "out": [16, 24], "repeat": 1}],
        "params": {"csp": {"inner": ["darknet", "dense"], "blocks": [1], "expand": [1.0, 2.0]}}})
    keys = {part.key for part in space_parts(space)}
    sampled = {part.key for seed in range(40) for part in network_parts(space.random_genotype(seed))}
    assert sampled <= keys
    assert any('"inner":"dense"' in k for k in keys) and any('"bottle_ratio":1.0' in k for k in keys)


# ------------------------------------------------------------------------- show, latency, export

def small(block_type: str) -> dict:
    """A small genotype of one new family (a csp of each inner family), at resolution 32."""
    fields = {"dense": [{"type": "dense", "out": 24, "layers": 2, "growth": 8},
                        {"type": "dense", "out": 32, "stride": 2, "layers": 2}],
              "csp": [{"type": "csp", "out": 16, "inner": "bottleneck"},
                      {"type": "csp", "out": 32, "stride": 2, "inner": "darknet", "blocks": 2, "expand": 2.0},
                      {"type": "csp", "out": 32, "inner": "dense", "layers": 2}],
              "darknet": [{"type": "darknet", "out": 16}, {"type": "darknet", "out": 32, "stride": 2, "repeat": 2}],
              "preact": [{"type": "preact", "out": 32, "form": "basic"},
                         {"type": "preact", "out": 64, "stride": 2, "repeat": 2}]}[block_type]
    raw = genotype(fields)
    raw["head"]["norm"] = block_type in ("dense", "preact")
    return raw


@pytest.mark.parametrize("block_type", NEW)
def test_every_block_builds_alone_for_cost_and_latency(block_type):
    g = load_genotype(small(block_type))
    parts = network_parts(g)
    assert len(parts) == g.num_blocks() + 2
    for part in parts:  # each part builds by itself and runs on its input shape
        with torch.no_grad():
            part.build().eval()(torch.randn(1, *part.in_shape))
    assert genotype_cost(g).params == count_params(build_model(g))


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("block_type", NEW)
def test_show_and_latency_commands(block_type, tmp_path, capsys):
    path = save_genotype(load_genotype(small(block_type)), tmp_path / "g.yaml")
    code, out, err = run_cli(["show", str(path), "--json"], capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["params"] == count_params(build_model(load_genotype(small(block_type))))
    assert {s["blocks"].split("(")[0].split()[0] for s in shown["stages"]} == {block_type}
    if block_type == "csp":  # a CSP stage names the family it wraps
        assert [s["blocks"] for s in shown["stages"]] == ["csp(bottleneck) x1", "csp(darknet) x1", "csp(dense) x1"]
    code, out, err = run_cli(["latency", str(path), "--json", "--threads", "1", "--warmup", "1", "--reps", "3",
                              "--no-cache"], capsys)
    assert code == 0, err
    assert json.loads(out)["measured_ms"] > 0


@pytest.mark.parametrize("block_type", NEW)
def test_onnx_export_matches_pytorch(block_type, tmp_path, capsys):
    import onnxruntime

    raw = small(block_type)
    model = randomize_bn(build_model(raw))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    path = save_genotype(load_genotype(raw), tmp_path / "g.yaml")
    onnx_path = tmp_path / "m.onnx"
    code, out, err = run_cli(["export", str(path), "--format", "onnx", "-o", str(onnx_path), "--weights",
                              str(tmp_path / "w.pt"), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["max_abs_diff"] <= 1e-4 and result["max_abs_output"] > 0.1
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 32, 32)
    (y,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert (torch.from_numpy(y) - model(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", ["densenet121", "cspdarknet53", "darknet53", "resnetv2_50"])
def test_timm_arch_def_export_refuses_the_family(name, capsys):
    code, out, err = run_cli(["export", f"zoo:{name}", "--format", "timm"], capsys)
    family = load_genotype(f"zoo:{name}").stages[0][0].type
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"stages[0].blocks[0].type: {family} cannot be expressed as a timm arch_def; only mbconv" in err


def test_timm_export_refuses_a_block_act_without_a_timm_code(capsys, tmp_path):
    raw = load_genotype("zoo:mobilenet_v2").to_dict()
    raw["stages"][1]["blocks"][0]["act"] = "leaky_relu"
    path = save_genotype(load_genotype(raw), tmp_path / "g.yaml")
    code, _, err = run_cli(["export", str(path), "--format", "timm"], capsys)
    assert code == 2
    assert "stages[1].blocks[0].act: leaky_relu has no timm n<act> code (re, r6, hs, sw)" in err
