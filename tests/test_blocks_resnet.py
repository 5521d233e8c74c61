"""The ResNet-style block families: basic, bottleneck, split_attention."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from searchspace import GenotypeError, build_model, parse_genotype
from searchspace.blocks import get_family
from tests.block_helpers import genotype, make_block

torch.set_num_threads(1)

FAMILIES = ("basic", "bottleneck", "split_attention")
SHAPES = [(16, 16, 1), (16, 32, 1), (16, 32, 2), (32, 32, 2)]  # (in, out, stride)




@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("in_ch,out,stride", SHAPES)
def test_forward_shape(name: str, in_ch: int, out: int, stride: int) -> None:
    block = make_block(name, in_ch, out, stride).eval()
    with torch.no_grad():
        y = block(torch.randn(2, in_ch, 9, 9))
    size = (9 - 1) // stride + 1
    assert y.shape == (2, out, size, size)
    assert get_family(name).output_size(9, stride) == size


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("avg_down", [False, True])
@pytest.mark.parametrize("in_ch,out,stride", SHAPES)
def test_shortcut_identity_iff_same_shape(name: str, avg_down: bool, in_ch: int, out: int, stride: int) -> None:
    block = make_block(name, in_ch, out, stride, avg_down=avg_down)
    assert isinstance(block.shortcut, nn.Identity) == (stride == 1 and in_ch == out)
    pools = [m for m in block.shortcut.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == int(avg_down and stride > 1)


def test_radix_must_divide_group_width() -> None:
    block = {"type": "split_attention", "out": 64, "stride": 1, "radix": 4, "base_width": 24}
    with pytest.raises(GenotypeError) as err:
        parse_genotype(genotype([block]))
    assert err.value.path == "stages[0].blocks[0].radix"
    assert "4 does not divide the 6 channels per group" in str(err.value)


def test_cardinality_must_divide_attention_width() -> None:
    block = {"type": "split_attention", "out": 64, "stride": 1, "radix": 1, "cardinality": 3}
    with pytest.raises(GenotypeError) as err:
        parse_genotype(genotype([block]))
    assert err.value.path == "stages[0].blocks[0].cardinality"
    assert "divisors of 32" in str(err.value)


@pytest.mark.parametrize("name", ["bottleneck", "split_attention"])
def test_zero_group_width_is_rejected(name: str) -> None:
    block = {"type": name, "out": 8, "stride": 1, "base_width": 4}
    with pytest.raises(GenotypeError, match=r"stages\[0\]\.blocks\[0\]\.base_width: .*0 channels per group"):
        parse_genotype(genotype([block]))


def test_odd_variants_build_and_run() -> None:
    blocks = [
        {"type": "basic", "out": 24, "stride": 1, "se": 0.25, "kernel": 5},
        {"type": "basic", "out": 32, "stride": 2, "avg_down": True, "act": "swish"},
        {"type": "bottleneck", "out": 64, "stride": 1, "groups": 2, "base_width": 32, "se": 0.25},
        {"type": "bottleneck", "out": 64, "stride": 2, "groups": 4, "expansion": 2, "avg_down": True},
        {"type": "split_attention", "out": 64, "stride": 1, "radix": 1, "cardinality": 2},
        {"type": "split_attention", "out": 128, "stride": 2, "radix": 4, "cardinality": 2, "avd_first": True},
        {"type": "split_attention", "out": 128, "stride": 2, "radix": 2, "avd": False, "avg_down": False},
    ]
    model = build_model(genotype(blocks)).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all()
