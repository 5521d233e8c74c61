"""Zero-cost proxies (predictors.zero_cost.scores) and the NAS-Bench-201 network (predictors.zero_cost.nb201)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from predictors.cost import count_params
from predictors.zero_cost.nb201 import arch_string, build_nb201, parse_arch
from predictors.zero_cost.scores import DATA_FREE, PROXIES, compute_proxies, vote
from searchspace import NasError, build_model

torch.set_num_threads(1)

ALL_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def batch(n: int = 8, size: int = 16, classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


def tiny_cnn(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10),
    )


def tiny_nb201(arch: str = MIXED, channels: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return build_nb201(arch, channels=channels, cells=1, resolution=16)


@pytest.mark.parametrize("make", [tiny_nb201, lambda: build_model("zoo:mobilenet_v3_small", num_classes=10)])
def test_every_proxy_is_finite(make) -> None:
    scores = compute_proxies(make(), batch())
    assert set(scores) == set(PROXIES)
    assert all(isinstance(v, float) and math.isfinite(v) for v in scores.values()), scores


def test_degenerate_network_gets_finite_floors() -> None:
    scores = compute_proxies(tiny_nb201(ALL_NONE), batch())
    assert all(math.isfinite(v) for v in scores.values()), scores
    assert scores["naswot"] >= 0.0


def test_model_is_not_modified() -> None:
    model = tiny_nb201().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    compute_proxies(model, batch())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running stats
    assert all(p.grad is None for p in model.parameters())
    assert not any(m.training for m in model.modules())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_scores_are_deterministic() -> None:
    model, data = tiny_nb201(), batch()
    assert compute_proxies(model, data) == compute_proxies(model, data)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synflow_and_params_prefer_the_wider_copy(seed: int) -> None:
    torch.manual_seed(seed)
    small, wide = tiny_cnn(8), tiny_cnn(16)
    s = compute_proxies(small, names=DATA_FREE, input_shape=(3, 16, 16))
    w = compute_proxies(wide, names=DATA_FREE, input_shape=(3, 16, 16))
    assert w["synflow"] > s["synflow"] and w["params"] > s["params"] and w["macs"] > s["macs"]
    torch.manual_seed(seed)
    s = compute_proxies(tiny_nb201(channels=4), names=("synflow", "params"), input_shape=(3, 16, 16))
    w = compute_proxies(tiny_nb201(channels=8), names=("synflow", "params"), input_shape=(3, 16, 16))
    assert w["synflow"] > s["synflow"] and w["params"] > s["params"]


def test_data_free_proxies_take_the_resolution_of_a_network() -> None:
    scores = compute_proxies(tiny_nb201(), names=("synflow", "params"))
    assert scores["params"] == count_params(tiny_nb201())


def test_vote_ranks() -> None:
    scores = {"a": [1.0, 2.0, 3.0, 4.0], "b": [10.0, 30.0, 20.0, 40.0], "c": [0.3, 0.2, 0.2, 0.9]}
    assert list(vote(scores)) == [1.0, 2.5, 2.5, 4.0]  # Borda sums 5, 6.5, 6.5, 12
    assert list(vote(scores, "majority")) == [1.0, 2.5, 2.5, 4.0]
    assert list(vote({"a": [3.0, float("nan"), 1.0]})) == [3.0, 1.0, 2.0]  # nan ranks lowest
    with pytest.raises(NasError, match="same networks"):
        vote({"a": [1.0, 2.0], "b": [1.0]})
    with pytest.raises(NasError, match="unknown method"):
        vote(scores, "copeland")


def test_vote_agrees_with_a_single_proxy() -> None:
    x = np.random.default_rng(0).normal(size=50)
    assert np.array_equal(vote({"x": x}), vote({"x": x}, "majority"))
    assert np.array_equal(vote({"x": x}), np.argsort(np.argsort(x)) + 1.0)


def test_unknown_proxy_and_missing_batch_are_clear_errors() -> None:
    with pytest.raises(NasError, match="unknown zero-cost proxy 'fisherman'"):
        compute_proxies(tiny_cnn(4), batch(), names=("synflow", "fisherman"))
    with pytest.raises(NasError, match="'snip' needs a batch"):
        compute_proxies(tiny_cnn(4), names=("snip",))
    with pytest.raises(NasError, match="input_shape"):
        compute_proxies(tiny_cnn(4), names=("synflow",))


def nb201_hand_count(n3: int, n1: int, classes: int = 10) -> int:
    """Params of the 16-32-64, 5-cells-per-stage network with n3 3x3 and n1 1x1 conv edges per cell."""
    total = 3 * 16 * 9 + 2 * 16  # stem conv + BN
    for c in (16, 32, 64):
        total += 5 * (n3 * (9 * c * c + 2 * c) + n1 * (c * c + 2 * c))
    for c_in, c_out in ((16, 32), (32, 64)):  # reductions: conv_a, conv_b (with BN), 1x1 shortcut
        total += 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + c_in * c_out
    return total + 2 * 64 + 64 * classes + classes  # last BN + classifier


def test_nb201_param_count_matches_the_hand_count() -> None:
    assert nb201_hand_count(6, 0) == 1_531_546  # NAS-Bench-201's 1.531546 MB for all-3x3 on CIFAR-10
    assert count_params(build_nb201(ALL_3X3)) == nb201_hand_count(6, 0)
    assert count_params(build_nb201(MIXED)) == nb201_hand_count(2, 2) == 615_386
    assert count_params(build_nb201(MIXED, num_classes=100)) == nb201_hand_count(2, 2, 100)


def test_nb201_forward_and_arch_strings() -> None:
    model = tiny_nb201(ALL_3X3)
    assert model(batch()[0]).shape == (8, 10)
    assert arch_string(parse_arch(MIXED)) == MIXED
    with pytest.raises(NasError, match="not one of"):
        parse_arch(MIXED.replace("skip_connect", "sep_conv_3x3"))
    with pytest.raises(NasError, match="read from node 1"):
        parse_arch("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|")
    with pytest.raises(NasError, match="3 nodes"):
        parse_arch("|none~0|+|none~0|none~1|")
