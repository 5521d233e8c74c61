"""The light block families: shuffle (ShuffleNetV2), ghost (GhostNet), osa (VoVNet)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from searchspace import GenotypeError, build_model, parse_genotype
from searchspace.blocks import get_family
from searchspace.blocks.shuffle import channel_shuffle
from tests.block_helpers import genotype, make_block

torch.set_num_threads(1)


def forward(block: nn.Module, in_ch: int, size: int) -> torch.Tensor:
    with torch.no_grad():
        return block.eval()(torch.randn(2, in_ch, size, size))


CASES = [
    ("shuffle", 16, 16, 1, {}),
    ("shuffle", 16, 32, 2, {"kernel": 5}),
    ("shuffle", 24, 24, 1, {"kernel": 7, "act": "hswish"}),
    ("ghost", 16, 16, 1, {}),
    ("ghost", 16, 24, 1, {"se": 0.25, "kernel": 5}),
    ("ghost", 16, 24, 2, {"mid": 40, "se": 0.25, "ratio": 3}),
    ("ghost", 24, 24, 2, {"kernel": 7, "expand": 6.0}),
    ("osa", 16, 32, 1, {"mid": 8, "layers": 3}),
    ("osa", 32, 32, 1, {"mid": 8, "layers": 2, "residual": True, "ese": True}),
    ("osa", 16, 32, 2, {"mid": 8, "depthwise": True, "ese": True}),
    ("osa", 16, 16, 1, {"mid": 8, "depthwise": True, "residual": True}),
]


@pytest.mark.parametrize("name,in_ch,out,stride,params", CASES)
@pytest.mark.parametrize("size", [8, 9])
def test_forward_shape(name: str, in_ch: int, out: int, stride: int, params: dict, size: int) -> None:
    y = forward(make_block(name, in_ch, out, stride, **params), in_ch, size)
    expected = get_family(name).output_size(size, stride)
    assert y.shape == (2, out, expected, expected)


def test_shuffle_stride1_needs_in_equal_out() -> None:
    raw = genotype([{"type": "shuffle", "out": 32, "stride": 2},
                    {"type": "shuffle", "out": 48, "stride": 1}])
    with pytest.raises(GenotypeError) as err:
        parse_genotype(raw)
    assert err.value.path == "stages[1].blocks[0].out"
    assert "48" in err.value.message and "32" in err.value.message and "stride 2" in err.value.message


def test_shuffle_odd_out_rejected() -> None:
    with pytest.raises(GenotypeError, match=r"stages\[0\]\.blocks\[0\]\.out: 33 is odd"):
        parse_genotype(genotype([{"type": "shuffle", "out": 33, "stride": 2}]))


def test_shuffle_stride1_keeps_first_half_then_shuffles() -> None:
    block = make_block("shuffle", 4, 4, 1)
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        y = block.eval()(x)
    assert torch.equal(y[:, 0::2], x[:, :2])  # untouched half lands on even channels


@pytest.mark.parametrize("groups,order", [(2, [0, 3, 1, 4, 2, 5]), (3, [0, 2, 4, 1, 3, 5])])
def test_channel_shuffle_order_in_both_memory_formats(groups: int, order: list[int]) -> None:
    x = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1, 1).expand(2, 6, 3, 3).contiguous()
    y = channel_shuffle(x, groups)
    y_last = channel_shuffle(x.contiguous(memory_format=torch.channels_last), groups)
    assert y[0, :, 2, 1].tolist() == order
    assert torch.equal(y_last, y)
    assert y_last.is_contiguous(memory_format=torch.channels_last) and not y_last.is_contiguous()


@pytest.mark.parametrize("name,in_ch,out,stride,params", CASES)
def test_channels_last_in_channels_last_out(name: str, in_ch: int, out: int, stride: int, params: dict) -> None:
    """A network run in channels_last stays in it from block to block (no conversion between blocks)."""
    block = make_block(name, in_ch, out, stride, **params).eval().to(memory_format=torch.channels_last)
    x = torch.randn(2, in_ch, 8, 8)
    with torch.no_grad():
        y = block(x.contiguous(memory_format=torch.channels_last))
        assert torch.allclose(y, block(x), atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("size", [2, 3, 5, 7, 9, 11, 13, 15])
def test_osa_pool_output_size_matches_ceil_mode_pool(size: int) -> None:
    real = nn.MaxPool2d(3, 2, ceil_mode=True)(torch.zeros(1, 1, size, size)).shape[-1]
    assert get_family("osa").output_size(size, 2) == real
    assert get_family("osa").output_size(size, 1) == size


def test_osa_pool_size_differs_from_conv_rule_at_odd_sizes() -> None:
    net = build_model(parse_genotype(genotype([{"type": "osa", "out": 16, "stride": 2, "mid": 8}], 9)))
    with torch.no_grad():
        assert net.forward_features(torch.randn(1, 3, 9, 9)).shape[-1] == 4  # a stride-2 conv would give 5


def test_osa_stride2_on_1x1_map_rejected() -> None:
    blocks = [{"type": "osa", "out": 16, "stride": 2, "mid": 8}] * 4  # 8 -> 4 -> 2 -> 1 -> too small
    parse_genotype(genotype(blocks[:3], resolution=8))
    with pytest.raises(GenotypeError, match=r"stages\[3\]\.blocks\[0\]\.stride"):
        parse_genotype(genotype(blocks, resolution=8))


def test_osa_residual_needs_same_shape() -> None:
    with pytest.raises(GenotypeError, match=r"stages\[0\]\.blocks\[0\]\.residual: true needs stride 1"):
        parse_genotype(genotype([{"type": "osa", "out": 32, "stride": 1, "mid": 8, "residual": True}]))
    with pytest.raises(GenotypeError, match=r"residual"):
        parse_genotype(genotype([{"type": "osa", "out": 16, "stride": 2, "mid": 8, "residual": True}]))


def test_osa_depthwise_reduction_only_when_in_differs_from_mid() -> None:
    assert isinstance(make_block("osa", 16, 16, 1, mid=16, depthwise=True).reduction, nn.Identity)
    assert not isinstance(make_block("osa", 16, 16, 1, mid=8, depthwise=True).reduction, nn.Identity)
    assert isinstance(make_block("osa", 16, 16, 1, mid=8).reduction, nn.Identity)


def test_ghost_shortcut_forms() -> None:
    assert isinstance(make_block("ghost", 16, 16, 1).shortcut, nn.Identity)
    for in_ch, out, stride in ((16, 24, 1), (16, 16, 2)):
        convs = [m for m in make_block("ghost", in_ch, out, stride, kernel=5).shortcut.modules()
                 if isinstance(m, nn.Conv2d)]
        assert [(c.kernel_size, c.stride, c.groups) for c in convs] == [((5, 5), (stride, stride), in_ch),
                                                                         ((1, 1), (1, 1), 1)]


def test_ghost_depthwise_conv_only_at_stride2() -> None:
    def depthwise(block: nn.Module) -> list[nn.Conv2d]:
        return [m for m in block.body.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (5, 5)]

    assert depthwise(make_block("ghost", 16, 16, 1, kernel=5, mid=32)) == []
    assert len(depthwise(make_block("ghost", 16, 16, 2, kernel=5, mid=32))) == 1


def test_ghost_module_cut_to_odd_width() -> None:
    y = forward(make_block("ghost", 16, 15, 1, mid=21, ratio=3), 16, 6)
    assert y.shape == (2, 15, 6, 6)
