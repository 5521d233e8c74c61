"""Latency measurement, cache, fingerprint, lookup table, learned predictor and the CLI (tiny reps)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import predictors.latency.parts as features
from nas.cli import main
from predictors.latency import timing
from predictors.latency.cache import LatencyCache
from predictors.latency.calibration import FULL_FEATURES, SHRINKS, Correction
from predictors.latency.conditions import MeasureConfig
from predictors.latency.fingerprint import fingerprint
from predictors.latency.measure import measure_latency
from predictors.latency.model import LatencyModel, Sample, read_measurements
from predictors.latency.space_parts import space_parts
from predictors.latency.table import LatencyTable
from predictors.latency.timing import summarize
from searchspace import save_genotype
from searchspace.errors import NasError
from searchspace.space import Space, SpaceConfig, StageChoice

FAST = dict(threads=1, warmup=1, reps=3, min_reps=1, rounds=1, round_seconds=0.001)
TINY_YAML = """
space:
  resolution: 32
  stem: {type: conv, out: 8, stride: 2, act: relu}
  head: {conv: 32, act: relu, num_classes: 10}
  stages:
    - {stride: 2, out: [8, 16], repeat: [1, 2], types: [mbconv, basic]}
    - {stride: 2, out: [16, 24], repeat: [1, 2], types: [mbconv]}
  params:
    mbconv: {kernel: [3], expand: [2.0, 4.0], se: [0.0], act: [relu]}
    basic: {kernel: [3], se: [0.0], avg_down: [false], act: [relu]}
"""


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own cache dir and fresh process-wide caches."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def tiny_space() -> Space:
    return Space(SpaceConfig(
        stages=[StageChoice(2, [8, 16], [1, 2], ["mbconv", "basic"]), StageChoice(2, [16, 24], [1, 2], ["mbconv"])],
        stem={"type": "conv", "out": 8, "stride": 2, "act": "relu"}, head={"conv": 32, "act": "relu", "num_classes": 10},
        params={"mbconv": {"kernel": [3], "expand": [2.0, 4.0], "se": [0.0], "act": ["relu"]},
                "basic": {"kernel": [3], "se": [0.0], "avg_down": [False], "act": ["relu"]}},
        resolution=32))


def test_fingerprint_contents() -> None:
    fp = fingerprint("torch", "cpu", 1)
    d = fp.to_dict()
    assert {"cpu", "cores", "threads", "backend", "device", "torch", "onnxruntime", "id"} <= set(d)
    assert d["threads"] == 1 and d["backend"] == "torch" and d["torch"] == torch.__version__
    assert fp.id() == fingerprint("torch", "cpu", 1).id() != fingerprint("torch", "cpu", 2).id()
    assert fingerprint("onnxruntime", "cpu", 1).id() != fp.id()


def test_summarize_and_spread() -> None:
    t = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (t.median_ms, t.q25_ms, t.q75_ms, t.min_ms, t.reps) == (3.0, 2.0, 4.0, 1.0, 5)
    assert t.spread == pytest.approx(2.0 / 3.0)


@pytest.fixture
def calls(monkeypatch) -> list[int]:
    """One entry per network actually measured (``make_runner`` call)."""
    made: list[int] = []
    real = timing.make_runner
    monkeypatch.setattr(timing, "make_runner", lambda *a, **k: made.append(1) or real(*a, **k))
    return made


def test_measurement_is_cached(tmp_path, calls) -> None:
    genotype = tiny_space().random_genotype(0)
    cache = LatencyCache(tmp_path / "m.jsonl")
    quiet = FAST | {"noise_threshold": float("inf")}  # never flagged noisy, whatever the machine does
    first = measure_latency(genotype, cache=cache, **quiet)
    assert not first.cached and first.median_ms > 0 and len(calls) == 1
    assert first.fingerprint == fingerprint("torch", "cpu", 1).to_dict()
    again = measure_latency(genotype, cache=LatencyCache(tmp_path / "m.jsonl"), **quiet)  # a new process
    assert again.cached and again.median_ms == first.median_ms and len(calls) == 1
    measure_latency(genotype, cache=cache, **(quiet | {"batch": 2}))  # another key: measured
    assert len(calls) == 2


def test_noisy_cached_measurement_is_measured_again(tmp_path, calls) -> None:
    genotype = tiny_space().random_genotype(0)
    cache = LatencyCache(tmp_path / "m.jsonl")
    with pytest.warns(RuntimeWarning, match="noisy"):
        first = measure_latency(genotype, cache=cache, **(FAST | {"noise_threshold": -1.0}))  # always noisy
    assert first.noisy and len(calls) == 1
    again = measure_latency(genotype, cache=LatencyCache(tmp_path / "m.jsonl"), **(FAST | {"noise_threshold": 1e9}))
    assert not again.cached and not again.noisy and len(calls) == 2  # measured again, now trusted
    third = measure_latency(genotype, cache=LatencyCache(tmp_path / "m.jsonl"), **FAST)
    assert third.cached and third.median_ms == again.median_ms and len(calls) == 2


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_other_backends(backend: str) -> None:
    m = measure_latency(tiny_space().random_genotype(1), cache=None, backend=backend, **FAST)
    assert m.backend == backend and m.median_ms > 0 and m.fingerprint["backend"] == backend


def test_lut_build_and_predict(tmp_path) -> None:
    space = tiny_space()
    parts = space_parts(space)
    keys = {p.key for p in parts}
    genotypes = [space.random_genotype(i) for i in range(12)]
    assert all(p.key in keys for g in genotypes for p in features.network_parts(g))
    config = MeasureConfig(**FAST)
    table = LatencyTable(config, tmp_path / "lut.jsonl")
    first = table.profile_many(genotypes)  # each network's new parts timed inside it
    used = {p.key for g in genotypes for p in features.network_parts(g)}
    assert first["added"] == len(used) == first["measured"] + first["shared"] and first["measured"] > 0
    assert table.profile_many(genotypes) == {"added": 0, "measured": 0, "shared": 0}
    g = genotypes[0]
    entries = [table.store.get(p.key) for p in features.network_parts(g)]
    assert table.memory_format == "channels_last" and all("contiguous_ms" not in e for e in entries)  # one format
    assert table.table_ms(g) == pytest.approx(sum(e["channels_last_ms"] for e in entries))
    measured = [2.0 * table.table_ms(x) for x in genotypes]  # a device twice as slow as its parts
    table.fit_correction(genotypes, measured)
    assert table.predict(g) == pytest.approx(measured[0], rel=0.2)
    reloaded = LatencyTable(config, tmp_path / "lut.jsonl")  # the correction is persisted
    assert reloaded.predict(g) == pytest.approx(table.predict(g))
    pred = reloaded.predict_interval(g)
    assert pred.low_ms <= pred.ms <= pred.high_ms


def _rows(n: int, seed: int = 0) -> list[dict[str, float]]:
    rng = np.random.RandomState(seed)
    rows = []
    for _ in range(n):
        row = {name: 0.0 for name in FULL_FEATURES}
        row.update({"mbconv_ms": rng.uniform(0, 10), "osa_ms": rng.uniform(0, 10), "stem_ms": 0.2,
                    "head_ms": 0.3, "parts": float(rng.randint(5, 20)), "one": 1.0})
        row["table_ms"] = row["mbconv_ms"] + row["osa_ms"] + 0.5
        rows.append(row)
    return rows


def test_correction_recovers_per_family_factors() -> None:
    """Enough networks: the correction learns each part group's own factor and the per-part cost."""
    rows = _rows(200)
    measured = [1.1 * r["mbconv_ms"] + 2.5 * r["osa_ms"] + 0.04 * r["parts"] + 0.3 for r in rows]
    correction = Correction.fit(rows, measured)
    coef = dict(zip(correction.names, correction.coef, strict=True))
    assert coef["mbconv_ms"] == pytest.approx(1.1, rel=0.03) and coef["osa_ms"] == pytest.approx(2.5, rel=0.03)
    assert all(c >= 0 for c in correction.coef) and correction.n == 200
    assert correction.shrink == min(SHRINKS)  # out of fold, the weakest pull to the common factor fits best
    assert [correction.apply(r) for r in rows[:5]] == pytest.approx(measured[:5], rel=0.02)


def test_correction_with_few_networks_is_one_factor() -> None:
    """A handful of networks: every group gets about the common factor, also a family never seen."""
    rows = _rows(6)
    measured = [1.5 * r["table_ms"] for r in rows]
    correction = Correction.fit(rows, measured)
    assert correction.common == pytest.approx(1.5, rel=1e-4)
    assert [correction.apply(r) for r in rows] == pytest.approx(measured, rel=1e-4)
    unseen = {name: 0.0 for name in FULL_FEATURES} | {"plain_ms": 4.0, "table_ms": 4.0, "parts": 3.0, "one": 1.0}
    assert correction.apply(unseen) == pytest.approx(6.0, rel=1e-4)  # not 0: the common factor
    assert correction.apply(unseen | {"plain_ms": 0.0, "future_ms": 4.0}) == pytest.approx(6.0, rel=1e-4)


def test_correction_interval_is_out_of_fold() -> None:
    """The interval comes from residuals of networks the fit did not see and the calibration's shared error:
    an 80% t interval of the log error."""
    rows = _rows(20, seed=1)
    # RMS 0.0606 (out of fold a little more): t(0.9, 19) 1.328 * sqrt(0.0606^2 * 1.05 + 0.03^2) = 0.0916
    noise = np.exp(np.linspace(-0.1, 0.1, 20))
    correction = Correction.fit(rows, [1.5 * r["table_ms"] * e for r, e in zip(rows, noise, strict=True)])
    assert 0.0916 < correction.high < 0.10 and correction.low == -correction.high
    exact = Correction.fit(rows, [1.5 * r["table_ms"] for r in rows])  # no residuals: the shared error alone
    assert exact.high == pytest.approx(1.328 * 0.03, rel=0.01)
    p = correction.interval(rows[0])
    assert p.low_ms == pytest.approx(p.ms * math.exp(correction.low)) and p.high_ms > p.ms
    assert Correction.fit(rows[:2], [1.0, 2.0]).low == 0.0  # too few for out-of-fold residuals


def test_predictor_round_trip(tmp_path) -> None:
    space = tiny_space()
    genotypes = list({g.hash(): g for g in (space.random_genotype(i) for i in range(60))}.values())
    rng = np.random.RandomState(0)
    samples = [Sample(g, math.exp(0.8 * features.cost_features(g)["log_macs"] - 9) * rng.uniform(0.97, 1.03))
               for g in genotypes]
    model = LatencyModel("auto").fit(samples[:-5])
    path = model.save(tmp_path / "model.joblib")
    sidecar = json.loads((tmp_path / "model.joblib.json").read_text())
    assert sidecar["format"] == "nas-latency-model/1" and sidecar["n"] == len(samples) - 5
    loaded = LatencyModel.load(path)
    for s in samples[-5:]:
        assert loaded.predict(s.genotype) == pytest.approx(model.predict(s.genotype))
        assert loaded.predict(s.genotype) == pytest.approx(s.latency_ms, rel=0.15)
        p = loaded.predict_interval(s.genotype)
        assert p.low_ms <= p.ms <= p.high_ms


def test_measurements_csv_errors(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("genotype,latency_ms\nzoo:mobilenet_v3_small,3.5\nzoo:mobilenet_v3_small,-1\n")
    with pytest.raises(NasError, match=r"row 3, column latency_ms: -1 is not a positive latency"):
        read_measurements(bad)
    bad.write_text("genotype,latency_ms\nzoo:nope,3.5\n")
    with pytest.raises(NasError, match=r"row 2, column genotype: .*unknown zoo name"):
        read_measurements(bad)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["zoo:mobilenet_v3_small", "--backend", "tvm"], "--backend: 'tvm' is not one of"),
    (["zoo:mobilenet_v3_small", "--predict", "--model", "missing.joblib"], "--model: no such file"),
    (["zoo:mobilenet_v3_small", "--measure"], "--measure: only with --predict"),
    (["zoo:mobilenet_v3_small", "--memory-format", "nhwc"], "memory_format: 'nhwc' is not one of channels_last"),
    (["zoo:mobilenet_v3_small", "--width", "0"], "scaling.width"),
    (["fit", "missing.csv", "-o", "m.joblib"], "no such file"),
    (["zoo:mobilenet_v3_small", "--threads", "0"], "--threads: 0 must be >= 1"),
    (["build-lut", "--networks", "0"], "--networks: 0 is not a positive number of networks"),
])
def test_cli_bad_input_one_line(argv, message, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["latency", *argv], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cli_cuda_missing(capsys) -> None:
    code, _, err = run_cli(["latency", "zoo:mobilenet_v3_small", "--device", "cuda"], capsys)
    assert code == 2 and "CUDA is not available" in err


def test_cli_fit_bad_row(tmp_path, capsys) -> None:
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("genotype,latency_ms\nzoo:mobilenet_v3_small,abc\n")
    code, _, err = run_cli(["latency", "fit", str(csv_path), "-o", str(tmp_path / "m.joblib")], capsys)
    assert code == 2 and "row 2, column latency_ms: 'abc' is not a number" in err


def test_cli_end_to_end(tmp_path, capsys) -> None:
    config = tmp_path / "search.yaml"
    config.write_text(TINY_YAML)
    fast = ["--threads", "1", "--warmup", "1", "--reps", "3"]
    code, out, _ = run_cli(["latency", "build-lut", "--config", str(config), "--networks", "4", "--calibrate", "3",
                            "--json", *fast], capsys)
    built = json.loads(out)
    assert code == 0 and built["parts"] == built["missing"] == built["measured"] + built["shared"] > 0
    assert built["networks"] == 4 and built["parts"] <= built["space_parts_in_table"] <= built["space_parts"]
    assert built["calibration_networks"] == 3 and built["memory_format"] == "channels_last"
    csv_path = tmp_path / "measured.csv"
    code, out, _ = run_cli(["latency", "validate", "--config", str(config), "--n", "8", "--seed", "1", "--lut",
                            "--out", str(csv_path), "--json", *fast], capsys)
    report = json.loads(out)
    assert code == 0 and report["n"] == 8 and set(report["lut"]) >= {"within_10", "within_20", "spearman", "mape"}
    assert len(csv_path.read_text().strip().splitlines()) == 1 + 8  # header + the 8 measured networks
    model = tmp_path / "model.joblib"
    assert run_cli(["latency", "fit", str(csv_path), "-o", str(model), "--kind", "ridge"], capsys)[0] == 0
    genotype = save_genotype(tiny_space().random_genotype(5), tmp_path / "g.yaml")
    code, out, _ = run_cli(["latency", str(genotype), "--predict", "--model", str(model), "--json"], capsys)
    assert code == 0 and json.loads(out)["predicted_ms"] > 0
    code, out, _ = run_cli(["latency", str(genotype), "--lut", "--json", *fast], capsys)
    assert code == 0 and json.loads(out)["predicted_ms"] > 0
    code, out, _ = run_cli(["latency", str(genotype), "--predict", "--measure", "--json", *fast], capsys)
    both = json.loads(out)
    assert code == 0 and both["predictor"] == "lut" and both["measured_ms"] > 0
    assert both["error_pct"] == pytest.approx(100 * (both["predicted_ms"] - both["measured_ms"]) / both["measured_ms"])
    code, out, _ = run_cli(["latency", str(genotype), "--json", *fast], capsys)
    first = json.loads(out)
    assert code == 0 and first["measured_ms"] > 0 and first["fingerprint"]["threads"] == 1
    code, out, _ = run_cli(["latency", str(genotype), "--json", *fast], capsys)
    assert json.loads(out)["cached"] is (not first["noisy"])  # a noisy first result is measured again


def test_accuracy_report_by_hand() -> None:
    from predictors.latency.model import accuracy_report

    report = accuracy_report([10.0, 10.0, 10.0, 10.0], [10.5, 11.5, 8.5, 13.0])  # errors 5%, 15%, 15%, 30%
    assert report["within_10"] == 0.25 and report["within_20"] == 0.75
    assert report["mape"] == pytest.approx(16.25) and report["n"] == 4
