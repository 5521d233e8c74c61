"""Parts timed inside their network: hooks read each part's own time, warm-up is dropped, repetitions stop once
the watched parts settle, and the table keeps the mean of a part met at several places (a fake clock)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from predictors.latency.conditions import MeasureConfig
from predictors.latency.in_network import NetworkTiming, time_genotype_parts, time_in_network, top_level_parts
from predictors.latency.parts import CostTable, network_parts
from predictors.latency.table import PART_PROFILE, LatencyTable
from predictors.latency.timing import summarize
from tests.test_latency_table import references, tiny_space


class Clock:
    """A clock that only moves when a fake part runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Step(nn.Module):
    """A part that takes ``durations_ms`` in turn (the last one repeats) on the fake clock."""

    def __init__(self, clock: Clock, durations_ms: list[float]) -> None:
        super().__init__()
        self.clock, self.durations, self.calls = clock, durations_ms, 0

    def forward(self, x):
        self.clock.now += self.durations[min(self.calls, len(self.durations) - 1)] / 1e3
        self.calls += 1
        return x


class FakeNetwork(nn.Module):
    def __init__(self, clock: Clock, stem: list[float], blocks: list[list[float]], head: list[float]) -> None:
        super().__init__()
        self.stem = Step(clock, stem)
        self.stages = nn.Sequential(nn.Sequential(*[Step(clock, b) for b in blocks]))
        self.head = Step(clock, head)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


CONFIG = MeasureConfig(warmup=2, reps=8, min_reps=3, target_spread=1e-6)  # float sums are not exact


def test_each_part_is_timed_inside_the_forward_and_warm_up_is_dropped() -> None:
    clock = Clock()
    # the first two forwards (the warm-up) are slow; then the parts take 1, 2, 3 and 4 ms
    model = FakeNetwork(clock, [50, 50, 1.0], [[50, 50, 2.0], [50, 50, 3.0]], [50, 50, 4.0])
    timing = time_in_network(model, torch.zeros(1), CONFIG, clock=clock)
    assert [t.median_ms for t in timing.parts] == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert timing.whole.median_ms == pytest.approx(10.0) and timing.whole.reps == 3  # settled at min_reps
    assert all(t.reps == 3 for t in timing.parts)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in top_level_parts(model))  # hooks removed


def test_repetitions_stop_once_the_watched_parts_settle() -> None:
    clock = Clock()
    # the watched block settles after 3 timed forwards; the unwatched head stays noisy (each timed pair is a
    # hooked and a plain forward, so the head's hooked times are 1, 9, 1, 9, ...)
    model = FakeNetwork(clock, [1.0], [[2.0]], [1.0, 1.0, 9.0, 9.0] * 10)
    settled = time_in_network(model, torch.zeros(1), replace(CONFIG, warmup=1), watched=[1], clock=clock)
    assert settled.whole.reps == 3 and settled.parts[1].median_ms == pytest.approx(2.0)
    clock = Clock()
    noisy = FakeNetwork(clock, [1.0], [[2.0]], [1.0, 1.0, 9.0, 9.0] * 10)
    assert time_in_network(noisy, torch.zeros(1), replace(CONFIG, warmup=1), clock=clock).whole.reps == 8
    clock = Clock()  # noisy and slow: stops at min_reps once the timed forwards took rounds x round_seconds
    slow = FakeNetwork(clock, [1.0], [[2.0]], [100.0, 100.0, 900.0, 900.0] * 10)
    budget = replace(CONFIG, warmup=1, rounds=2, round_seconds=0.5)  # 1 s
    assert time_in_network(slow, torch.zeros(1), budget, clock=clock).whole.reps == 3
    clock = Clock()
    slow = FakeNetwork(clock, [1.0], [[2.0]], [100.0, 100.0, 150.0, 150.0] * 20)
    assert time_in_network(slow, torch.zeros(1), budget, clock=clock).whole.reps == 4  # 4 x 256 ms > 1 s


def test_a_real_network_timed_part_by_part() -> None:
    g = tiny_space().random_genotype(3)
    config = replace(PART_PROFILE, threads=1, reps=5, min_reps=3)
    timing = time_genotype_parts(g, config)
    assert len(timing.parts) == len(network_parts(g)) and timing.whole.memory_format == "channels_last"
    assert 0 < sum(t.median_ms for t in timing.parts) and timing.whole.median_ms > 0 and timing.whole.reps >= 3
    with pytest.raises(ValueError, match="torch backend only"):
        time_genotype_parts(g, replace(config, backend="onnxruntime"))


def test_a_part_met_twice_in_one_network_keeps_the_mean_of_both(tmp_path) -> None:
    """Equal blocks repeated in a stage are one entry: the mean of their medians, so the sum is kept."""
    g = tiny_space().random_genotype(0)
    g = replace(g, stages=[[replace(b, repeat=3) for b in stage] for stage in g.stages])
    parts = network_parts(g)
    keys = [p.key for p in parts]
    repeated = [i for i, key in enumerate(keys) if keys.count(key) == 2]  # the 2nd and 3rd block of each stage
    assert len(repeated) >= 4

    def timer(genotype, resolution, indices):  # each place its own time: 1 + its index
        return NetworkTiming([summarize([1.0 + i]) for i in indices], summarize([100.0]))

    table = LatencyTable(replace(PART_PROFILE, threads=1), tmp_path / "lut.jsonl", CostTable(tmp_path / "c.jsonl"),
                         timer=timer, references=references, notify=lambda line: None)
    table.profile(g)
    places = [i for i in repeated if parts[i].key == parts[repeated[0]].key]
    entry = table.store.get(parts[places[0]].key)
    assert entry["channels_last_ms"] == pytest.approx(sum(1.0 + i for i in places) / len(places))
    assert table.table_ms(g) == pytest.approx(sum(1.0 + i for i in range(len(parts))))
