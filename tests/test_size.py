"""The size check: exact parameter counts and activation estimates before allocation, and the limits."""

from __future__ import annotations

import pytest

from searchspace import build, load_genotype, with_scaling, zoo_names
from searchspace.errors import GenotypeError, NasError
from searchspace.size import SizeLimit, check_size, network_size
from tests.test_zoo_counts import REFERENCE

TINY = """
format: nas-genotype/1
input: {channels: 3, resolution: 32}
stem: {type: conv, out: 8, kernel: 3, stride: 1}
stages:
- blocks:
  - {type: mbconv, out: 8, stride: 1, kernel: 3, expand: 1.0}
head: {num_classes: 10}
"""


def test_tiny_network_counted_by_hand() -> None:
    size = network_size(load_genotype(TINY))
    # stem conv 3->8 k3 (216) + BN (16); depthwise 8 k3 (72) + BN (16) + 1x1 8->8 (64) + BN (16); linear 8->10 (90)
    assert [(p.path, p.params) for p in size.parts] == [("input", 0), ("stem", 232), ("stages[0].blocks[0]", 168),
                                                        ("head", 90)]
    assert size.params == 490 == sum(p.numel() for p in build(load_genotype(TINY)).parameters())
    # float32 values: image 3x32x32; stem conv + BN 16 maps of 32x32; block 4 maps of 8 channels; 10 logits
    assert [p.activation_bytes for p in size.parts] == [4 * 3072, 4 * 16 * 1024, 4 * 32 * 1024, 4 * 10]


def test_parameter_counts_equal_the_reference_networks_for_the_whole_zoo() -> None:
    limit = SizeLimit()
    assert sorted(REFERENCE) == zoo_names()
    for name in zoo_names():
        genotype = load_genotype(f"zoo:{name}")
        size = check_size(genotype)
        assert size.params == REFERENCE[name][0], name  # torchvision / timm counts, which the built networks match
        assert size.params < limit.max_params / 10, name  # every reference network passes with a wide margin
        assert size.activation_bytes < limit.max_activation_gib * 2**30 / 10, name


def test_build_arguments_count_too() -> None:
    genotype = load_genotype("zoo:resnet18")
    assert network_size(genotype, num_classes=10).params == 11_689_512 - 512 * 990 - 990
    assert network_size(genotype, in_channels=1).params == 11_689_512 - 2 * 64 * 49


def test_a_network_over_the_limit_is_refused_before_allocation() -> None:
    wide = with_scaling(load_genotype("zoo:resnet50"), width=16.0)  # 6e9 parameters: 24 GB if built
    assert network_size(wide).params == pytest.approx(6.04e9, rel=0.01)
    with pytest.raises(GenotypeError) as info:
        build(wide)
    assert str(info.value).startswith("stages[3].blocks[0].out: 2048 gives the network 6.04e+09 parameters")
    assert "over the limit of 2e+09" in str(info.value) and "NAS_MAX_PARAMS" in str(info.value)
    check_size(wide, limit=SizeLimit(max_params=1e10))  # a raised limit lets it through (not built here)


def test_limit_argument_and_environment(monkeypatch) -> None:
    small = load_genotype("zoo:mobilenet_v3_small")
    with pytest.raises(GenotypeError, match=r"over the limit of 1e\+06; use smaller values"):
        build(small, limit=SizeLimit(max_params=1e6))
    monkeypatch.setenv("NAS_MAX_PARAMS", "2e6")
    with pytest.raises(GenotypeError, match=r"head\.hidden: 1024 gives the network 2.54e\+06 parameters"):
        build(small)
    monkeypatch.setenv("NAS_MAX_PARAMS", "3e6")
    monkeypatch.setenv("NAS_MAX_ACTIVATION_GIB", "0.01")
    with pytest.raises(GenotypeError, match=r"^stem\.out: 16 gives the network about 0.023 GiB of activations at batch 1 "
                                            r"\(the stem: 0.006 GiB, at resolution 224\), over the limit of 0.01 GiB"):
        build(small)
    assert SizeLimit.from_env({"NAS_MAX_PARAMS": " 5e9 ", "NAS_MAX_ACTIVATION_GIB": ""}) == SizeLimit(5e9, 64.0)
    for bad in ("lots", "0", "-1", "inf", "nan"):
        with pytest.raises(NasError, match=rf"^NAS_MAX_PARAMS: '{bad}' is not a positive number$"):
            SizeLimit.from_env({"NAS_MAX_PARAMS": bad})
