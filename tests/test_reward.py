"""Reward functions against hand-computed values (REFERENCE.md section 3)."""

import pytest

from nas.search.reward import make_reward
from searchspace.errors import NasError


def test_mnasnet_soft_both_sides():
    r = make_reward("mnasnet", target=20.0)
    assert r(0.8, 20.0) == pytest.approx(0.8)
    assert r(0.8, 40.0) == pytest.approx(0.8 * 2.0 ** -0.07)  # 0.76211...
    assert r(0.8, 10.0) == pytest.approx(0.8 * 0.5 ** -0.07)  # 0.83981...
    assert r(0.8, 40.0) == pytest.approx(0.762110, abs=1e-6)


def test_mnasnet_weight_override_small():
    r = make_reward("mnasnet", target=15.0, weight=-0.15)
    assert r(0.6, 30.0) == pytest.approx(0.6 * 2.0 ** -0.15)


def test_mnasnet_hard():
    r = make_reward("mnasnet-hard", target=20.0)
    assert r(0.8, 10.0) == pytest.approx(0.8)
    assert r(0.8, 20.0) == pytest.approx(0.8)
    assert r(0.8, 40.0) == pytest.approx(0.4)
    assert not r.rejects(1000.0)  # no reject factor: every candidate is trained
    limited = make_reward("mnasnet-hard", target=20.0, reject_factor=2.0)
    assert not limited.rejects(40.0) and limited.rejects(40.01)
    assert not make_reward("mnasnet", target=20.0, reject_factor=2.0).rejects(1000.0)  # soft: never


def test_tunas_abs():
    r = make_reward("tunas-abs", target=20.0)
    assert r(0.8, 20.0) == pytest.approx(0.8)
    assert r(0.8, 30.0) == pytest.approx(0.8 - 0.10 * 0.5)
    assert r(0.8, 10.0) == pytest.approx(0.8 - 0.10 * 0.5)


def test_pareto_is_multi_objective():
    r = make_reward("pareto", target=20.0)
    assert r.multi_objective and r(0.7, 99.0) == 0.7


def test_efficientnet_macs_reward():
    r = make_reward("mnasnet", target=400e6)
    assert r(0.77, 800e6) == pytest.approx(0.77 * 2 ** -0.07)


def test_unknown_reward():
    with pytest.raises(NasError, match="reward: 'foo' is not one of mnasnet, mnasnet-hard, tunas-abs, pareto"):
        make_reward("foo", 20.0)
