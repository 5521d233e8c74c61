"""The lookup table without set-up: filled on demand, equal parts shared, calibrated on first use,
observations refit; repetitions stop once the spread is small (fake timers, exact numbers)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from predictors.latency.conditions import MeasureConfig
from predictors.latency.in_network import NetworkTiming
from predictors.latency.parts import CostTable, network_parts, part_signature
from predictors.latency.table import PART_PROFILE, LatencyTable
from predictors.latency.timing import summarize, time_runners
from searchspace import parse_genotype, with_scaling
from searchspace.space import Space, SpaceConfig, StageChoice


def tiny_space(types=("mbconv", "basic")) -> Space:
    return Space(SpaceConfig(
        stages=[StageChoice(2, [8, 16], [1, 2], list(types)), StageChoice(2, [16, 24], [1, 2], ["mbconv"])],
        stem={"type": "conv", "out": 8, "stride": 2, "act": "relu"}, head={"conv": 32, "act": "relu", "num_classes": 10},
        params={"mbconv": {"kernel": [3], "expand": [2.0, 4.0], "se": [0.0], "act": ["relu"]},
                "basic": {"kernel": [3], "se": [0.0], "avg_down": [False, True], "act": ["relu"]}},
        resolution=32))


def part_ms(part) -> float:
    """The fake device: a part takes 1 ms per million input elements plus 0.01 ms."""
    c, h, w = part.in_shape
    return c * h * w / 1e6 + 0.01


class FakeTimer:
    """The fake device: each part takes :func:`part_ms` inside its network, and the whole network ``factor``
    times its parts plus ``overhead`` ms (``phases``: a speed factor per call, cycling: the machine's pace).
    Remembers every part it was asked to time and each network it ran."""

    def __init__(self, factor: float = 2.0, overhead: float = 0.0, phases: tuple[float, ...] = (1.0,)) -> None:
        self.factor, self.overhead, self.phases = factor, overhead, phases
        self.keys: list[str] = []
        self.networks: list[str] = []

    def __call__(self, genotype, resolution, indices) -> NetworkTiming:
        pace = self.phases[len(self.networks) % len(self.phases)]
        parts = network_parts(genotype, resolution)
        self.networks.append(genotype.hash())
        self.keys += [parts[i].key for i in indices]
        whole = self.factor * sum(part_ms(p) for p in parts) + self.overhead
        return NetworkTiming([summarize([pace * part_ms(parts[i])]) for i in indices], summarize([pace * whole]))


def references(resolution: int):
    """Four tiny first-use calibration networks at ``resolution``."""
    return [_at(tiny_space().random_genotype(100 + i), resolution) for i in range(4)]


def _at(genotype, resolution):
    return with_scaling(genotype, resolution=resolution)


def make_table(tmp_path, timer=None, notes=None) -> LatencyTable:
    return LatencyTable(replace(PART_PROFILE, threads=1), tmp_path / "lut.jsonl", CostTable(tmp_path / "costs.jsonl"),
                        timer=timer or FakeTimer(), references=references,
                        notify=(notes.append if notes is not None else lambda line: None))


def test_table_fills_on_demand(tmp_path) -> None:
    """A fresh table: the first prediction profiles the network's parts (and the references'), a second
    table on the same files profiles nothing and calibrates nothing."""
    timer, notes = FakeTimer(), []
    table = make_table(tmp_path, timer, notes)
    assert len(table) == 0 and table.correction.n == 0
    g = tiny_space().random_genotype(0)
    first = table.predict(g)
    wanted = {p.key for p in network_parts(g)} | {p.key for r in references(32) for p in network_parts(r)}
    assert {e["key"] for e in table.store.values()} == wanted == set(timer.keys) | _shared_keys(table)
    assert timer.networks == [r.hash() for r in references(32)] * 2 + [g.hash()]  # two calibration passes
    assert table.correction.n == 4
    again_timer = FakeTimer()
    again = make_table(tmp_path, again_timer)
    assert again.predict(g) == pytest.approx(first) and again_timer.keys == [] and again_timer.networks == []


def _shared_keys(table) -> set[str]:
    return {e["key"] for e in table.store.values() if "same_as" in e}


def test_prediction_for_a_part_never_seen(tmp_path) -> None:
    """Only the parts the table lacks are profiled; the prediction is the correction on the new sums."""
    timer = FakeTimer()
    table = make_table(tmp_path, timer)
    g = tiny_space().random_genotype(0)
    table.predict(g)
    known = {e["key"] for e in table.store.values()}
    wider = parse_genotype({**g.to_dict(), "head": {**g.head, "conv": 48}})  # a head of a width never seen
    new = [p for p in network_parts(wider) if p.key not in known]
    assert [p.kind for p in new] == ["head"]
    timer.keys.clear()
    pred = table.predict_interval(wider)
    assert timer.keys == [new[0].key]
    expected = 2.0 * sum(part_ms(p) for p in network_parts(wider))  # the fake device: twice its parts
    assert pred.ms == pytest.approx(expected, rel=1e-4) and pred.low_ms <= pred.ms <= pred.high_ms


def test_first_use_calibration(tmp_path) -> None:
    """No correction yet: the first prediction times the references part by part and whole (saying so), fits
    and saves."""
    notes: list[str] = []
    timer = FakeTimer(factor=1.5, overhead=0.2)
    table = make_table(tmp_path, timer, notes=notes)
    g = _at(tiny_space().random_genotype(3), 64)
    pred = table.predict_interval(g)
    assert timer.networks[:8] == [r.hash() for r in references(64)] * 2  # at the requested resolution, two passes
    assert len(notes) == 1 and "calibrating on 4 networks" in notes[0] and "resolution 64" in notes[0]
    assert table.correction.n == 4 and table.correction_path.exists()
    saved = json.loads(table.correction_path.read_text())
    assert saved["n"] == 4 and saved["names"] == table.correction.names
    truth = 1.5 * sum(part_ms(p) for p in network_parts(g)) + 0.2
    assert pred.ms == pytest.approx(truth, rel=0.05)
    assert len(table.observations) == 4


def test_observe_adds_and_refits(tmp_path) -> None:
    """Networks measured whole later join the data; measurements under other conditions do not."""
    table = make_table(tmp_path)
    space = tiny_space()
    table.predict(space.random_genotype(0))
    assert table.correction.n == 4
    extra = [space.random_genotype(i) for i in range(10, 13)]
    assert table.observe_many(extra, [2.0 * table.table_ms(g) for g in extra])
    assert table.correction.n == len(table.observations) == 7
    other = table.conditions(32) | {"memory_format": "contiguous"}
    assert not table.observe(space.random_genotype(20), 1.0, conditions=other)
    assert table.correction.n == 7
    assert table.observe(space.random_genotype(20), 1.0, conditions=table.conditions(32))
    assert make_table(tmp_path).correction.n == 8  # saved


def test_equal_parts_are_profiled_once(tmp_path) -> None:
    """Two keys building the same module on the same input (avg_down without a shortcut) share one entry."""
    timer = FakeTimer()
    table = make_table(tmp_path, timer)
    g = tiny_space(("basic",)).random_genotype(0)
    raw = g.to_dict()
    def with_first_stage(avg_down: bool):
        block = {"type": "basic", "repeat": 2, "out": 8, "stride": 2, "avg_down": avg_down}
        return parse_genotype({**raw, "stages": [{"blocks": [block]}, raw["stages"][1]]})

    plain, down = with_first_stage(False), with_first_stage(True)
    same = [(a, b) for a, b in zip(network_parts(plain), network_parts(down), strict=True) if a.key != b.key]
    assert len(same) == 2  # the first block (with a shortcut: differs) and the repeated one (none: equal)
    first, repeated = same
    assert part_signature(first[0]) != part_signature(first[1])
    assert part_signature(repeated[0]) == part_signature(repeated[1])
    counts = table.profile_many([plain, down])
    assert timer.networks == [plain.hash(), down.hash()]  # each timed once, inside itself
    assert counts["shared"] == 1 and counts["measured"] == counts["added"] - 1
    assert timer.keys.count(repeated[0].key) + timer.keys.count(repeated[1].key) == 1
    entry = table.store.get(repeated[1].key)
    assert entry["channels_last_ms"] == table.store.get(repeated[0].key)["channels_last_ms"]


class FakeClock:
    """A clock that the runner advances by the next duration of a list (ms), cycling."""

    def __init__(self, durations_ms: list[float]) -> None:
        self.now, self.durations, self.i = 0.0, durations_ms, 0

    def __call__(self) -> float:
        return self.now

    def run(self) -> None:
        self.now += self.durations[self.i % len(self.durations)] / 1e3
        self.i += 1


def test_repetitions_stop_once_the_spread_is_small() -> None:
    config = MeasureConfig(warmup=1, reps=30, min_reps=5, rounds=3, min_rounds=1, round_seconds=0.01,
                           target_spread=0.03)
    steady, shaky = FakeClock([1.0]), FakeClock([1.0, 2.0])
    assert [len(s) for s in time_runners([steady.run], config, steady)] == [10]  # one round of 10 ms, then done
    assert [len(s) for s in time_runners([shaky.run], config, shaky)] == [30]  # never steady: every repetition
    again = FakeClock([1.0])
    assert [len(s) for s in time_runners([again.run], replace(config, min_rounds=2), again)] == [20]


def test_a_table_search_measures_its_finalists_whole_and_learns_from_them(tmp_path) -> None:
    """The cost model of `--latency lut`: predictions from the table, and networks timed together (the
    finalists) measured whole under the table's conditions, then added to the correction's data."""
    from nas.search.cost_models import TableLatency
    from nas.search.winner import careful_costs

    table = make_table(tmp_path)
    model = TableLatency(table, resolution=32)
    networks = [tiny_space().random_genotype(i) for i in (1, 2)]
    assert model.cost(networks[0]) > 0 and table.correction.n == 4  # first use: the 4 references
    measured = careful_costs(model)(networks)  # what choose_winner calls: real, side by side
    assert len(measured) == 2 and all(m.median_ms > 0 and not m.cached for m in measured)
    assert measured[0].conditions == table.conditions(32)
    assert table.correction.n == 6 and len(table.observations) == 6
    observed = {r["key"] for r in table.observations.records()}
    assert {f"{_at(g, 32).hash()}|r32" for g in networks} <= observed


def test_a_slow_minute_moves_parts_and_whole_alike_and_widens_the_interval(tmp_path) -> None:
    """The machine runs 30% slower during the first pass: the parts and the whole of each network are read
    in one run, so the correction still learns the device's own factor (1.5); the passes' disagreement is
    the machine's retest noise, kept and added to every interval."""
    steady = make_table(tmp_path / "steady", FakeTimer(factor=1.5))
    steady.calibrate(32)
    timer = FakeTimer(factor=1.5, phases=(1.3,) * 4 + (1.0,) * 4)  # 4 references: the first pass slow
    table = make_table(tmp_path / "shaky", timer)
    table.calibrate(32)
    assert table.correction.common == pytest.approx(1.5, rel=0.02) and steady.correction.retest == 0.0
    assert table.correction.retest == pytest.approx(math.log(1.3))
    wholes = sorted(r["measured_ms"] for r in table.observations.records())  # the mean of the two passes
    assert wholes == pytest.approx(sorted(1.15 * 1.5 * sum(part_ms(p) for p in network_parts(r)) for r in references(32)))
    assert table.correction.high > steady.correction.high + 0.1
    table.refit()  # kept through a refit and a reload
    assert make_table(tmp_path / "shaky").correction.retest == pytest.approx(math.log(1.3))
