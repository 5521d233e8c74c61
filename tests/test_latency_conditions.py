"""Measurement conditions: carried on every result, read back from a genotype's provenance by
``nas latency``; the scaling flags and predictions with an interval on the command line (tiny networks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import main
from predictors.latency import allocator
from predictors.latency.cache import LatencyCache
from predictors.latency.conditions import CHANNELS_LAST_HOWTO, MeasureConfig
from predictors.latency.fingerprint import fingerprint
from predictors.latency.measure import measure_latency, measure_many
from predictors.latency.table import LatencyTable
from searchspace import load_genotype, parse_genotype, save_genotype, with_scaling
from tests.test_latency import cache_dir  # noqa: F401  (autouse: a fresh cache dir per test)
from tests.test_latency_table import FakeTimer, references, tiny_space

FAST = dict(threads=1, warmup=1, reps=3, min_reps=1, rounds=1, round_seconds=0.001, noise_threshold=float("inf"))
FAST_FLAGS = ["--warmup", "1", "--reps", "3"]
ROOT = Path(__file__).resolve().parents[1]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(["latency", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_results_carry_their_conditions() -> None:
    g = tiny_space().random_genotype(0)
    fid = fingerprint("torch", "cpu", 1).id()
    m = measure_latency(g, cache=None, **FAST)
    assert m.conditions == {"backend": "torch", "device": "cpu", "threads": 1, "memory_format": "channels_last",
                            "batch": 1, "resolution": 32, "fingerprint_id": fid}
    [other] = measure_many([g], MeasureConfig(**FAST, batch=2, resolution=48, memory_format="contiguous"),
                           cache=None)
    assert other.conditions == m.conditions | {"batch": 2, "resolution": 48, "memory_format": "contiguous"}


def test_cache_is_keyed_by_memory_format(tmp_path) -> None:
    g = tiny_space().random_genotype(0)
    cache = LatencyCache(tmp_path / "m.jsonl")
    first = measure_latency(g, cache=cache, **FAST)
    assert measure_latency(g, cache=cache, **FAST).cached
    other = measure_latency(g, cache=cache, memory_format="contiguous", **FAST)
    assert not other.cached and other.memory_format == "contiguous" and first.memory_format == "channels_last"


def _with_conditions(tmp_path, conditions: dict):
    g = tiny_space().random_genotype(0)
    return save_genotype(parse_genotype({**g.to_dict(), "provenance": {"latency_conditions": conditions}}),
                         tmp_path / "best.yaml")


def test_cli_measures_under_the_recorded_conditions(tmp_path, capsys) -> None:
    recorded = {"backend": "torch", "device": "cpu", "threads": 1, "memory_format": "contiguous", "batch": 2,
                "resolution": 64, "fingerprint_id": "0123456789ab"}
    path = _with_conditions(tmp_path, recorded)
    code, out, err = run_cli([str(path), "--json", *FAST_FLAGS], capsys)
    result = json.loads(out)
    here = fingerprint("torch", "cpu", 1).id()
    assert code == 0 and result["conditions"] == recorded | {"fingerprint_id": here}
    assert result["hash"] == with_scaling(load_genotype(path), resolution=64).hash() and "how_to_run" not in result
    assert "using the conditions recorded in the genotype's provenance (torch on cpu, 1 thread(s), contiguous, " \
           "batch 2, resolution 64)" in err and "fingerprint 0123456789ab" in err
    code, out, err = run_cli([str(path), "--json", "--batch", "1", "--memory-format", "channels_last", *FAST_FLAGS],
                             capsys)
    result = json.loads(out)
    assert code == 0 and result["conditions"]["batch"] == 1 and result["conditions"]["memory_format"] == "channels_last"
    assert result["conditions"]["resolution"] == 64 and "--batch, --memory-format from the command line" in err
    assert result["how_to_run"] == CHANNELS_LAST_HOWTO


def test_recorded_conditions_reproduce_the_number(tmp_path, capsys) -> None:
    """A result's conditions written to provenance (as a search writes best.yaml): `nas latency` finds the same
    measurement (same key: hash at that resolution, fingerprint, batch, memory format)."""
    g = with_scaling(tiny_space().random_genotype(1), resolution=48)
    m = measure_latency(g, **FAST)
    path = save_genotype(parse_genotype({**tiny_space().random_genotype(1).to_dict(),
                                         "provenance": {"latency_conditions": m.conditions}}), tmp_path / "best.yaml")
    code, out, _ = run_cli([str(path), "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["cached"] and result["measured_ms"] == m.median_ms
    assert result["conditions"] == m.conditions


def test_cli_bad_recorded_conditions_one_line(tmp_path, capsys) -> None:
    path = _with_conditions(tmp_path, {"memory_format": "nhwc"})
    code, _, err = run_cli([str(path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "provenance.latency_conditions.memory_format: 'nhwc' is not one of channels_last, contiguous" in err


def test_cli_scaling_flags_and_channels_last_note(capsys) -> None:
    code, out, _ = run_cli(["zoo:mobilenet_v3_small", "--width", "0.5", "--depth", "0.5", "--resolution", "64",
                            "--threads", "1", "--json", *FAST_FLAGS], capsys)
    result = json.loads(out)
    scaled = with_scaling(load_genotype("zoo:mobilenet_v3_small"), 0.5, 0.5, 64)
    assert code == 0 and result["hash"] == scaled.hash() and result["resolution"] == 64
    assert result["conditions"]["resolution"] == 64
    code, out, _ = run_cli(["zoo:mobilenet_v3_small", "--width", "0.5", "--depth", "0.5", "--resolution", "64",
                            "--threads", "1", *FAST_FLAGS], capsys)
    assert code == 0 and "resolution 64, channels_last" in out and "model.to(memory_format=torch.channels_last)" in out
    glibc = allocator._glibc_mallopt() is not None
    assert ("MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824" in out) == glibc


def test_cli_predicts_with_an_interval_and_learns_from_measurements(tmp_path, capsys) -> None:
    """--predict answers without a build (the table is calibrated here with a fake timer, as a first
    use would); --predict --measure adds the measured network to the correction's data."""
    table = LatencyTable.for_this_device(threads=1, timer=FakeTimer(), references=references,
                                         notify=lambda line: None)
    table.calibrate(32)
    genotype = save_genotype(tiny_space().random_genotype(7), tmp_path / "g.yaml")
    code, out, err = run_cli([str(genotype), "--predict", "--threads", "1", "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["predictor"] == "lut" and "calibrating" not in err
    assert result["low_ms"] <= result["predicted_ms"] <= result["high_ms"]
    assert result["conditions"] == table.conditions(32)
    measure_latency(load_genotype(genotype), **FAST)  # measured before (not noisy): the command finds it
    code, out, _ = run_cli([str(genotype), "--predict", "--measure", "--threads", "1", "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["cached"] and result["added_to_correction"] is True
    assert LatencyTable.for_this_device(threads=1).correction.n == table.correction.n + 1


def test_steady_allocator_fixes_both_glibc_thresholds() -> None:
    calls: list[tuple[int, int]] = []
    assert allocator.steady_allocator(lambda param, value: calls.append((param, value)) or 1)
    assert calls == [(-3, 32 * 2**20), (-1, 2**30)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD (glibc malloc.h)
    assert not allocator.steady_allocator(lambda param, value: 0)  # refused: reported, not assumed


FORWARD_FAULTS = """
import resource, sys, torch
from torch import nn
from predictors.latency import allocator
if sys.argv[1] == "steady":
    assert allocator.steady_allocator()
torch.set_num_threads(1)
net = nn.Sequential(nn.Conv2d(3, 48, 3, padding=1), nn.ReLU(), nn.Conv2d(48, 96, 3, stride=2, padding=1),
                    nn.ReLU(), nn.Conv2d(96, 24, 1)).eval()
x = torch.randn(1, 3, 112, 112)
with torch.inference_mode():
    for _ in range(3):
        net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        net(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(allocator._glibc_mallopt() is None, reason="glibc only")
def test_steady_allocator_stops_page_faults_in_every_forward() -> None:
    """With glibc's adaptive defaults a forward of a network with megabyte activations maps fresh pages in
    most processes (about 6,000-7,000 page faults over these 5 forwards; in some, by chance of the
    address layout, none); with the thresholds fixed a warmed-up forward maps no fresh activation pages, in
    every process. Mapping them fresh would fault about 4,800 pages over 5 forwards (the three activations,
    3.8 MB a forward); a few hundred faults from a busy machine (seen beside another test process) are
    noise, a tenth of that count is not."""
    def faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", FORWARD_FAULTS, mode], capture_output=True, text=True,
                              cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    fresh_pages = 5 * (48 * 112 * 112 + 96 * 56 * 56 + 24 * 56 * 56) * 4 // 4096
    assert all(count < fresh_pages // 10 for count in [faults("steady") for _ in range(3)])
