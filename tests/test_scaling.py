"""Compound scaling: arithmetic against hand-computed variants, the coefficient grid, the latency
ladder (MACs as an exact cost, and real tiny measurements) and ``nas scale`` input errors."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from nas.cli import main as cli_main
from nas.scaling.search import (
    PAPER,
    PHI_STEP,
    Coefficients,
    Probe,
    best_point,
    coefficient_grid,
    compound_scale,
    grid_search,
    latency_ladder,
    latency_measure,
    proxy_config_at,
    round_resolution,
    scaled_fields,
    spread_subset,
)
from predictors.cost import params_and_macs
from predictors.latency import measure as latency
from predictors.latency.conditions import MeasureConfig
from predictors.training.proxy import ProxyConfig
from searchspace import load_genotype, parse_genotype, save_genotype
from searchspace.resolve import resolve

pytestmark = pytest.mark.filterwarnings("ignore:latency of .* is noisy:RuntimeWarning")

TINY = {
    "format": "nas-genotype/1",
    "name": "tiny",
    "input": {"channels": 3, "resolution": 32},
    "stem": {"type": "conv", "out": 8, "stride": 2, "act": "relu"},
    "stages": [
        {"blocks": [{"type": "mbconv", "repeat": 1, "out": 8, "stride": 1, "kernel": 3, "expand": 1.0}]},
        {"blocks": [{"type": "mbconv", "repeat": 2, "out": 16, "stride": 2, "kernel": 3, "expand": 3.0}]},
        {"blocks": [{"type": "mbconv", "repeat": 2, "out": 24, "stride": 2, "kernel": 3, "expand": 3.0}]},
    ],
    "head": {"conv": 64, "num_classes": 10},
}


@pytest.fixture(autouse=True)
def _one_thread(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    return parse_genotype(TINY)


# ---- arithmetic ----------------------------------------------------------------------------------


def test_phi1_of_b0_by_hand():
    """phi = 1 with (1.2, 1.1, 1.15) on B0: width 1.1, depth 1.2, resolution 224 * 1.15 = 257.6 -> 256.

    Repeats ceil(1.2 * [1, 2, 2, 3, 3, 4, 1]) = [2, 3, 3, 4, 4, 5, 2]; channels make_divisible(c * 1.1, 8):
    stem 35.2 -> 32, stages 17.6 -> 16, 26.4 -> 24, 44 -> 48, 88 -> 88, 123.2 -> 120, 211.2 -> 208,
    352 -> 352, head 1408 -> 1408: EfficientNet-B2's network (9,109,994 params) at 256 instead of 260.
    """
    b0 = load_genotype("zoo:efficientnet_b0")
    variant = compound_scale(b0, PAPER, 1)
    assert variant.scaling == {"width": 1.1, "depth": 1.2, "resolution": 256, "divisor": 8}
    net = resolve(variant)
    assert net.stem["out"] == 32 and net.head["conv"] == 1408
    repeats = [sum(1 for b in net.blocks if b.stage == s) for s in range(7)]
    outs = [next(b.args.out for b in net.blocks if b.stage == s) for s in range(7)]
    assert repeats == [2, 3, 3, 4, 4, 5, 2]
    assert outs == [16, 24, 48, 88, 120, 208, 352]
    assert variant.provenance == {} and variant.name == b0.name
    params, _ = params_and_macs(variant)
    assert params == 9_109_994 == params_and_macs(load_genotype("zoo:efficientnet_b2"))[0]


def test_scaled_fields_other_phi_and_base_scaling():
    b0 = load_genotype("zoo:efficientnet_b0")
    # phi 2: 1.1^2 = 1.21, 1.2^2 = 1.44, 224 * 1.3225 = 296.24 -> 296
    assert scaled_fields(b0, PAPER, 2) == (1.21, 1.44, 296)
    # phi 3: 1.331, 1.728, 224 * 1.520875 = 340.7 -> 344
    assert scaled_fields(b0, PAPER, 3) == (1.331, 1.728, 344)
    # phi -1: 1/1.1 = 0.90909 -> 0.9091, 1/1.2 -> 0.8333, 224 / 1.15 = 194.8 -> 192
    assert scaled_fields(b0, PAPER, -1) == (0.9091, 0.8333, 192)
    # the base's own scaling multiplies in: B1 is depth 1.1 at 240
    b1 = load_genotype("zoo:efficientnet_b1")
    assert scaled_fields(b1, PAPER, 1) == (1.1, 1.32, 280)  # 240 * 1.15 = 276 -> 280 (half up)
    assert scaled_fields(b0, PAPER, 0) == (1.0, 1.0, 224)


@pytest.mark.parametrize(("value", "multiple", "expected"), [
    (257.6, 8, 256), (260.0, 8, 264), (252.0, 8, 256), (251.99, 8, 248), (3.0, 8, 8), (36.8, 4, 36), (38.0, 4, 40),
])
def test_round_resolution(value, multiple, expected):
    assert round_resolution(value, multiple) == expected


def test_proxy_resolution_follows_gamma():
    proxy = ProxyConfig(resolution=32)
    assert proxy_config_at(proxy, PAPER).resolution == 36       # 32 * 1.15 = 36.8 -> 36
    assert proxy_config_at(proxy, Coefficients(2.0, 1.0, 1.0)).resolution == 32
    assert proxy_config_at(proxy, Coefficients(1.0, 1.0, 1.4)).resolution == 44  # 44.8 -> 44


# ---- the grid --------------------------------------------------------------------------------------


def test_grid_points_satisfy_the_constraint():
    grid = coefficient_grid(0.05, 0.05)
    assert len(grid) == 108 and PAPER in grid
    for c in grid:
        assert min(c.alpha, c.beta, c.gamma) >= 1.0
        assert abs(c.alpha * c.beta**2 * c.gamma**2 - 2.0) <= 0.05 * 2.0 + 1e-9
        for v in (c.alpha, c.beta, c.gamma):
            assert abs(v / 0.05 - round(v / 0.05)) < 1e-6
    assert len(set(grid)) == len(grid)
    tight = coefficient_grid(0.05, 0.02)
    assert set(tight) < set(grid) and PAPER not in tight  # 1.92 is 4% off


def test_spread_subset_starts_at_the_paper_point_and_covers():
    grid = coefficient_grid(0.05, 0.05)
    subset = spread_subset(grid, 8)
    assert len(subset) == len(set(subset)) == 8 and subset[0] == PAPER and set(subset) <= set(grid)
    assert {c.alpha for c in subset} != {PAPER.alpha}  # spread along alpha too
    assert spread_subset(grid[:3], 8) == grid[:3]


def test_grid_search_trains_each_point(tiny):
    proxy = ProxyConfig(dataset="synthetic", epochs=1, subset=200, val_subset=100, batch_size=50, width=1.0,
                        bn_images=50, threads=1)
    points = [PAPER, Coefficients(2.0, 1.0, 1.0)]
    results = grid_search(tiny, proxy, points)
    assert [r.coefficients for r in results] == points
    assert [r.proxy_resolution for r in results] == [36, 32]
    assert all(0.0 <= r.accuracy <= 1.0 and not r.error for r in results)
    assert best_point(results).accuracy == max(r.accuracy for r in results)


# ---- the latency ladder ------------------------------------------------------------------------------


def macs_cost(memo: dict, quick_factor: float = 1.0) -> callable:
    """An exact, deterministic cost: MMACs of each variant (quartiles equal to the median); quick
    probes read ``quick_factor`` times the truth."""

    def measure(genotypes, careful: bool) -> list[Probe]:
        out = []
        for g in genotypes:
            if g.hash() not in memo:
                memo[g.hash()] = params_and_macs(g)[1] / 1e6
            value = memo[g.hash()] * (1.0 if careful else quick_factor)
            out.append(Probe(value, value, value, value, 1))
        return out

    return measure


def cost(measure, genotype) -> float:
    return measure([genotype], True)[0].median_ms


def test_ladder_with_macs_picks_the_largest_phi(tiny):
    measure = macs_cost({})
    base = cost(measure, tiny)
    smallest = cost(measure, compound_scale(tiny, PAPER, -3.0))
    budgets = [smallest * 0.5, base * 0.7, base, base * 2.5, 1e9]
    rungs = latency_ladder(tiny, PAPER, budgets, measure)
    assert [r.status for r in rungs] == ["impossible", "ok", "ok", "ok", "capped"]
    assert rungs[0].genotype is None and "smallest variant" in rungs[0].note
    for r in rungs[1:4]:
        assert cost(measure, r.genotype) <= r.budget_ms and r.verify.median_ms <= r.budget_ms
        assert r.next_phi == pytest.approx(r.phi + PHI_STEP)
        assert cost(measure, compound_scale(tiny, PAPER, r.phi + PHI_STEP)) > r.budget_ms
    assert rungs[2].phi >= 0.0 > rungs[1].phi  # the base itself meets its own cost
    assert rungs[1].phi <= rungs[2].phi <= rungs[3].phi
    assert rungs[4].phi == 6.0 and rungs[4].next_phi is None


def test_ladder_with_real_tiny_measurements(tiny):
    quick = MeasureConfig(warmup=2, reps=10, min_reps=5, rounds=2, round_seconds=0.01)
    careful = MeasureConfig(warmup=2, reps=20, min_reps=10, rounds=2, round_seconds=0.02, target_spread=0.0)
    measure = latency_measure("torch", 1, quick, careful, cache=None)
    base = measure([tiny], True)[0]
    rungs = latency_ladder(tiny, PAPER, [1e-6, base.median_ms * 3], measure, low=-1.0, high=1.0, step=0.25)
    assert rungs[0].status == "impossible"
    assert rungs[1].status in ("ok", "capped")
    assert rungs[1].verify.median_ms <= rungs[1].budget_ms and rungs[1].verify.reps >= 10


def test_noisy_cached_probes_are_measured_again(tiny, tmp_path):
    from predictors.latency.cache import LatencyCache

    cache = LatencyCache(tmp_path / "m.jsonl")
    # never flagged noisy by itself (a noisy first result would be measured again, not cached)
    quick = MeasureConfig(warmup=1, reps=5, min_reps=3, rounds=1, round_seconds=0.01, noise_threshold=float("inf"))
    measure = latency_measure("torch", 1, quick, cache=cache)
    first = measure([tiny], False)[0]
    m = latency.measure_latency(tiny, replace(quick, threads=1, resolution=None), cache=cache)
    assert m.cached and m.median_ms == first.median_ms
    record = m.to_dict() | {"median_ms": 1e6, "noisy": True}  # a result measured under heavy load
    cache.store(m.genotype_hash, m.fingerprint["id"], m.resolution, 1, record)
    assert measure([tiny], False)[0].median_ms < 1e6


def test_verification_steps_down_when_the_pick_misses(tiny):
    """A pick whose careful re-measurement misses the budget is replaced by a smaller step."""
    exact = macs_cost({})
    optimistic = macs_cost({}, quick_factor=0.5)  # quick probes read half the truth: the first pick is too large
    budget = cost(exact, tiny)
    (rung,) = latency_ladder(tiny, PAPER, [budget], optimistic)
    (truth,) = latency_ladder(tiny, PAPER, [budget], exact)
    assert rung.status == "ok" and rung.verify.median_ms <= budget
    assert rung.search.median_ms == cost(exact, rung.genotype)  # decided by the careful re-bisection
    assert rung.phi == truth.phi and cost(exact, compound_scale(tiny, PAPER, rung.next_phi)) > budget


def test_ladder_climbs_when_the_quick_probes_read_high(tiny):
    """Quick probes that overstate latency put the first pick too low; careful ones correct it upward."""
    exact = macs_cost({})
    pessimistic = macs_cost({}, quick_factor=1.6)
    budget = cost(exact, tiny) * 2.0
    (truth,) = latency_ladder(tiny, PAPER, [budget], exact)
    (rung,) = latency_ladder(tiny, PAPER, [budget], pessimistic)
    assert truth.phi > latency_ladder(tiny, PAPER, [budget / 1.6], exact)[0].phi  # the quick pick is lower
    assert rung.status == "ok" and rung.phi == truth.phi and rung.next_phi == truth.next_phi
    assert rung.next_probe.median_ms > budget >= rung.verify.median_ms and rung.note == ""


# ---- the command line ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "message"), [
    (["--phi", "0"], "--phi: 0 is out of range"),
    (["--phi", "x"], "--phi: 'x' is not an integer"),
    (["--latency-ladder", "10"], "--latency-ladder: '10' is not a latency with a unit"),
    (["--latency-ladder", "10ms,fast"], "--latency-ladder: 'fast'"),
    (["--phi", "1", "--alpha", "1.2x", "--beta", "1.1", "--gamma", "1.15"], "--alpha: '1.2x' is not a number"),
    (["--phi", "1", "--alpha", "1.2"], "--alpha, --beta and --gamma go together"),
    (["--phi", "1", "--alpha", "1.2", "--beta", "0.9", "--gamma", "1.15"], "--beta: 0.9 must be a number >= 1"),
    (["--phi", "1", "--latency-ladder", "10ms"], "give exactly one of --phi"),
    (["--latency-ladder", "10ms", "--grid", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15"], "--grid searches"),
    (["--phi", "1", "--grid-max", "0"], "--grid-max: 0 must be >= 1"),
    ([], "give exactly one of --phi"),
])
def test_cli_bad_input_one_line(argv, message, capsys):
    assert cli_main(["scale", "zoo:efficientnet_b0", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("nas scale: error: ") and message in err


def test_cli_family_with_given_coefficients(tiny, tmp_path, capsys):
    path = save_genotype(tiny, tmp_path / "tiny.yaml")
    out_dir = tmp_path / "out"
    argv = ["scale", str(path), "--phi", "1..2", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15",
            "-o", str(out_dir), "--latency-threads", "1", "--quiet"]
    assert cli_main(argv) == 0
    out, _ = capsys.readouterr()
    assert "| 1 | tiny_b1 | 1.1 | 1.2 | 40 |" in out and "| 2 | tiny_b2 | 1.21 | 1.44 | 40 |" in out
    b2 = load_genotype(out_dir / "tiny_b2.yaml")
    assert b2.scaling["width"] == 1.21 and b2.resolution == 40  # 32 * 1.3225 = 42.3 -> 40
    prov = b2.provenance
    assert prov["phi"] == 2 and prov["alpha"] == 1.2 and prov["params"] == params_and_macs(b2)[0]
    assert prov["macs"] == params_and_macs(b2)[1] and prov["latency_ms"] > 0
    assert (out_dir / "family.md").read_text() == out
    assert math.isclose(prov["beta"], 1.1)
