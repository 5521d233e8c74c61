"""Issue 26, part B: the ibn (IBN-Net) and transformer (ViT encoder stage) families, the patch stem."""

from __future__ import annotations

import json
import math

import pytest
import torch
from block_helpers import genotype, make_block, randomize_bn
from torch import nn

from nas.cli import main
from predictors.cost import count_macs, count_params
from predictors.latency.parts import genotype_cost, network_parts
from searchspace import GenotypeError, build_model, load_genotype, parse_genotype, save_genotype, with_scaling
from searchspace.blocks.ibn import IBN
from searchspace.space import space_from_dict

torch.set_num_threads(1)
NEW = ("ibn", "transformer")


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------- ibn


@pytest.mark.parametrize("in_ch,out,stride", [(64, 256, 1), (256, 256, 1), (256, 512, 2)])
def test_ibn_a_counts_as_the_bottleneck_and_splits_the_first_norm(in_ch, out, stride):
    block = make_block("ibn", in_ch, out, stride, ibn="a")
    assert params(block) == params(make_block("bottleneck", in_ch, out, stride))
    norm = block.body[0][1]
    width = out // 4
    assert isinstance(norm, IBN) and norm.IN.num_features == width // 2 and norm.BN.num_features == width - width // 2
    with torch.no_grad():
        y = block.eval()(torch.randn(2, in_ch, 9, 9))
    assert y.shape == (2, out, (9 - 1) // stride + 1, (9 - 1) // stride + 1)


def test_ibn_a_instance_normalises_the_first_channels_per_image():
    norm = make_block("ibn", 64, 256, 1, ibn="a", ratio=0.25).body[0][1].eval()
    x = torch.randn(2, 64, 7, 7) * 5 + 3
    with torch.no_grad():
        y = norm(x)
    first = y[:, :16].flatten(2)  # int(64 * 0.25) instance-normalised channels, each image by itself
    assert torch.allclose(first.mean(-1), torch.zeros(2, 16), atol=1e-5)
    assert torch.allclose(first.var(-1, unbiased=False), torch.ones(2, 16), atol=1e-3)
    assert torch.allclose(y[:, 16:], x[:, 16:] / math.sqrt(1 + 1e-5), atol=1e-5)  # fresh BN in eval: identity


def test_ibn_b_adds_an_instance_norm_on_the_output_and_none_is_the_bottleneck():
    b = make_block("ibn", 64, 256, 1, ibn="b")
    assert isinstance(b.body[-1], nn.InstanceNorm2d) and b.body[-1].affine
    assert params(b) == params(make_block("bottleneck", 64, 256, 1)) + 2 * 256
    assert params(make_block("ibn", 64, 256, 1, ibn="none")) == params(make_block("bottleneck", 64, 256, 1))


def test_resnet50_ibn_a_is_resnet50_with_ibn_in_three_stages():
    model = build_model("zoo:resnet50_ibn_a")
    assert count_params(model) == count_params(build_model("zoo:resnet50")) == 25557032
    assert sum(isinstance(m, IBN) for m in model.modules()) == 3 + 4 + 6


# ----------------------------------------------------------------------------------- transformer


def vit_stage_params(dim: int, layers: int, tokens: int, cls: bool = True) -> int:
    block = 4 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + 2 * (dim * 4 * dim) + 4 * dim + dim
    return layers * block + tokens * dim + (2 * dim if cls else 0) + 2 * dim


@pytest.mark.parametrize("name,dim,heads", [("vit_tiny_patch16_224", 192, 3), ("vit_small_patch16_224", 384, 6)])
def test_vit_counts_part_by_part(name, dim, heads):
    model = build_model(f"zoo:{name}")
    assert count_params(model.stem) == 3 * 16 * 16 * dim + dim
    assert count_params(model.stages) == vit_stage_params(dim, 12, 14 * 14)
    assert count_params(model.head) == dim * 1000 + 1000
    assert model.stages[0][0].blocks[0].attn.heads == heads


def reference_attention(block, x: torch.Tensor) -> torch.Tensor:
    """timm's Attention without the fused kernel: softmax(q k^T / sqrt(d)) v per head."""
    n, length, dim = x.shape
    heads = block.heads
    q, k, v = block.qkv(x).reshape(n, length, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    attn = (q @ k.transpose(-2, -1) / math.sqrt(dim // heads)).softmax(-1)
    return block.proj((attn @ v).transpose(1, 2).reshape(n, length, dim))


def test_attention_is_multi_head_scaled_dot_product():
    torch.manual_seed(0)
    stage = make_block("transformer", 32, 32, 1, heads=4, layers=1)
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        assert torch.allclose(stage.blocks[0].attn(x), reference_attention(stage.blocks[0].attn, x), atol=1e-5)


def test_class_token_readout_is_the_normalised_class_token_over_the_map():
    torch.manual_seed(0)
    stage = make_block("transformer", 16, 32, 2, heads=2, layers=2, cls_token=True, readout="cls").eval()
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        y = stage(x)
        tokens = stage.embed(x).flatten(2).transpose(1, 2) + stage.positions(5, 5)
        tokens = torch.cat([(stage.cls_token + stage.cls_pos).expand(2, -1, -1), tokens], dim=1)
        cls = stage.norm(stage.blocks(tokens))[:, 0]
    assert y.shape == (2, 32, 5, 5)
    assert torch.allclose(y, cls[:, :, None, None].expand(2, 32, 5, 5), atol=1e-6)


def test_map_readout_keeps_the_tokens_in_place_and_the_embed_conv_only_when_needed():
    assert isinstance(make_block("transformer", 32, 32, 1).embed, nn.Identity)
    assert make_block("transformer", 16, 32, 1).embed.kernel_size == (1, 1)
    assert make_block("transformer", 16, 32, 2).embed.stride == (2, 2)
    stage = make_block("transformer", 32, 32, 1, layers=1, pos_embed=False, norm=False).eval()
    for module in stage.modules():  # zero residual branches: the stage passes its input through
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
    x = torch.randn(1, 32, 6, 6)
    with torch.no_grad():
        assert torch.equal(stage(x), x)


def test_position_table_is_resampled_at_another_resolution():
    full = build_model("zoo:vit_tiny_patch16_224")
    small = build_model("zoo:vit_tiny_patch16_224", resolution=64).eval()
    assert count_params(small) == count_params(full)  # the 14x14 table is kept and resampled to 4x4
    with torch.no_grad():
        assert small(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_depth_scales_the_encoder_layers():
    model = build_model("zoo:vit_tiny_patch16_224", depth=0.5, resolution=32)
    assert len(model.stages[0][0].blocks) == 6


def test_vit_macs_are_the_linear_layers():
    # timm's reference figure (and ours): the patch conv, every linear layer on 197 tokens and the head;
    # torch's flop counter has no formula for CPU scaled-dot-product attention (timm's fused attention too)
    g = load_genotype("zoo:vit_tiny_patch16_224")
    linear = 197 * 12 * (192 * 576 + 192 * 192 + 2 * 192 * 768)
    assert count_macs(build_model(g), 224) == 196 * 3 * 256 * 192 + linear + 192 * 1000 == 1074851328


# ------------------------------------------------------------------------------------ errors


def entry(**fields) -> dict:
    return genotype([{"out": 16, **fields}])


@pytest.mark.parametrize("fields, message", [
    ({"type": "ibn", "ibn": "c"}, "stages[0].blocks[0].ibn: c is not one of a, b, none"),
    ({"type": "ibn", "out": 8, "expansion": 4, "ratio": 0.05},
     "stages[0].blocks[0].ratio: 0.05 splits the 2-channel first norm into 0 instance-normalised and 2 "
     "batch-normalised channels; both need at least one, so use a ratio nearer 0.5 or a larger out"),
    ({"type": "transformer", "heads": 3},
     "stages[0].blocks[0].heads: 3 does not divide out 16; use a number of heads that divides the width"),
    ({"type": "transformer", "readout": "cls"},
     "stages[0].blocks[0].readout: cls needs cls_token: true (there is no class token to read out)"),
    ({"type": "transformer", "mlp_ratio": 0.1},
     "stages[0].blocks[0].mlp_ratio: 0.1 is out of range; expected a number from 0.25 to 8"),
    ({"type": "transformer", "layers": 0},
     "stages[0].blocks[0].layers: 0 is out of range; expected an integer from 1 to 48"),
])
def test_errors_name_the_field_in_one_line(fields, message):
    with pytest.raises(GenotypeError) as info:
        parse_genotype(entry(**fields))
    assert str(info.value) == message


def test_patch_stem_errors():
    raw = genotype([{"type": "transformer", "out": 16}], resolution=16)
    raw["stem"] = {"type": "patch", "out": 16, "patch": 32}
    with pytest.raises(GenotypeError) as info:
        parse_genotype(raw)
    assert str(info.value) == "stem.patch: 32 is larger than the 16x16 input; use a smaller patch or a larger resolution"
    raw["stem"] = {"type": "patch", "out": 16, "patch": 5}
    with pytest.raises(GenotypeError) as info:
        parse_genotype(raw)
    assert str(info.value) == "stem.patch: 5 is not one of 2, 4, 7, 8, 14, 16, 32"


# -------------------------------------------------------------------------------------- the space


def test_a_space_mixing_transformer_and_mbconv_samples_networks_that_run():
    space = space_from_dict({"types": ["transformer", "mbconv"]})
    seen = set()
    for seed in range(30):
        g = space.random_genotype(seed)  # raises GenotypeError if the space sampled an invalid genotype
        seen |= {stage[0].type for stage in g.stages}
    assert seen == {"transformer", "mbconv"}
    model = build_model(with_scaling(space.random_genotype(0), resolution=64)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_a_space_of_ibn_blocks_samples_both_forms():
    space = space_from_dict({"types": ["ibn"]})
    forms = {stage[0].params["ibn"] for seed in range(20) for stage in space.random_genotype(seed).stages}
    assert forms == {"a", "b"}


# ------------------------------------------------------------------------- show, latency, export


def small(block_type: str) -> dict:
    """A small genotype of one new family, at resolution 32 (the transformer behind a patch stem)."""
    if block_type == "ibn":
        return genotype([{"type": "ibn", "out": 32, "ibn": "a"}, {"type": "ibn", "out": 64, "stride": 2, "ibn": "b"}])
    raw = genotype([{"type": "transformer", "out": 32, "layers": 2, "heads": 2, "grid": 4},
                    {"type": "transformer", "out": 48, "stride": 2, "heads": 4, "layers": 1, "cls_token": True,
                     "readout": "cls"}])
    raw["stem"] = {"type": "patch", "out": 32, "patch": 4}
    return raw


@pytest.mark.parametrize("block_type", NEW)
def test_every_block_builds_alone_for_cost_and_latency(block_type):
    g = load_genotype(small(block_type))
    parts = network_parts(g)
    assert len(parts) == g.num_blocks() + 2
    for part in parts:
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
    code, out, err = run_cli(["latency", str(path), "--json", "--threads", "1", "--warmup", "1", "--reps", "3",
                              "--no-cache"], capsys)
    assert code == 0, err
    assert json.loads(out)["measured_ms"] > 0


@pytest.mark.parametrize("block_type", NEW)
def test_onnx_export_matches_onnxruntime(block_type, tmp_path, capsys):
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
