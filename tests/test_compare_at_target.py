"""experiments/compare_at_target.py: the random baseline's draws and the verdict's statistics."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from searchspace.space import space_from_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
_spec = importlib.util.spec_from_file_location("compare_at_target", ROOT / "experiments" / "compare_at_target.py")
compare = importlib.util.module_from_spec(_spec)
sys.modules["compare_at_target"] = compare  # dataclasses look their module up there
_spec.loader.exec_module(compare)


def row(label: str, tests: list[float], random: bool = False, ms: float = 10.0) -> dict:
    mean, sd = compare.mean_sd(tests)
    return {"label": label, "random": random, "tests": tests, "seeds": len(tests), "test_mean": mean,
            "test_sd": sd, "test_se": compare.standard_error(sd, len(tests)), "latency_ms": ms}


def test_random_draws_keep_only_networks_within_the_band_and_are_seeded():
    space = space_from_dict({"types": ["mbconv", "basic"]})
    costs = iter([5.0, 9.0, 10.5, 8.5, 7.9, 9.9, 1.0])
    kept = compare.random_within(space, 3, 8.0, 10.0, lambda g: next(costs), seed=1, max_draws=7, log=lambda t: None)
    assert [(ms, draw) for _, ms, draw in kept] == [(9.0, 1), (8.5, 3), (9.9, 5)]
    assert [g.to_dict() for g, _, _ in kept] == [space.random_genotype(100003 + d).to_dict() for d in (1, 3, 5)]


def test_random_draws_stop_at_max_draws_with_fewer_networks():
    space = space_from_dict({"types": ["basic"]})
    calls = []
    kept = compare.random_within(space, 5, 8.0, 10.0, lambda g: calls.append(g) or 20.0, seed=0, max_draws=4,
                                 log=lambda t: None)
    assert kept == [] and len(calls) == 4


def test_gap_counts_both_rows_seed_errors():
    gap = compare.gap_against(row("winner", [0.90, 0.91, 0.92]), row("zoo", [0.88, 0.88, 0.88]))
    # gap 3 points; SE = hypot(0.01 / sqrt(3), 0) = 0.577 points
    assert gap["gap"] == pytest.approx(3.0) and gap["se"] == pytest.approx(100 * 0.01 / math.sqrt(3))
    assert gap["beyond_2se"]
    close = compare.gap_against(row("winner", [0.90, 0.91, 0.92]), row("zoo", [0.90, 0.90, 0.905]))
    assert not close["beyond_2se"]


def test_relative_improvement_over_random_networks_by_hand():
    winner = row("winner", [0.90, 0.91, 0.92])
    randoms = [row(f"random {i}", [m, m, m], random=True) for i, m in enumerate((0.88, 0.89, 0.90))]
    got = compare.relative_to_random(winner, randoms)
    # random mean 0.89, its variance 1e-4 / 3; the winner's SE^2 1e-4 / 3; Welch dof = 4; t(0.975, 4) = 2.7764
    half = 2.776445 * math.sqrt(2e-4 / 3)
    assert got["random_mean"] == pytest.approx(0.89) and got["dof"] == pytest.approx(4.0)
    assert got["relative"] == pytest.approx(0.02 / 0.89)
    assert got["low"] == pytest.approx((0.02 - half) / 0.89, rel=1e-5)
    assert got["high"] == pytest.approx((0.02 + half) / 0.89, rel=1e-5)


def test_verdict_is_met_only_when_every_gap_is_beyond_two_standard_errors():
    winner = row("winner", [0.95, 0.951, 0.952], ms=19.0)
    randoms = [row(f"random {i}", [m, m + 0.001, m + 0.002], random=True) for i, m in enumerate((0.88, 0.89, 0.90))]
    lines, summary = compare.verdict([winner, row("zoo a", [0.90, 0.90, 0.90]), *randoms], target=20.0)
    assert summary["met"] and "Winner within T: yes" in lines[0] and lines[-1].endswith("met.")
    level = row("zoo b", [0.95, 0.951, 0.952])
    lines, summary = compare.verdict([winner, level, *randoms], target=20.0)
    assert not summary["met"] and "not beyond" in lines[1] and lines[-1].endswith("not met.")
