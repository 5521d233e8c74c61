"""Latency work knows when the machine is busy: other work from /proc/stat (values by hand), a calibration
under load kept provisional and replaced by a quiet one, parts profiled under load profiled again, two
calibrations of one table run once, and a real calibration beside a CPU-burning process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from predictors.latency.load import (
    CpuLoadMonitor,
    CpuSnapshot,
    Load,
    NoLoadMonitor,
    Window,
    busy_threshold,
    default_monitor,
    load_between,
    read_busy_seconds,
)
from predictors.latency.parts import network_parts
from predictors.latency.table import CALIBRATION_PASSES
from tests.test_latency_table import FakeTimer, make_table, references, tiny_space

HAS_PROC_STAT = read_busy_seconds() is not None


class FakeMonitor:
    """Reports ``other_cores`` of other work (busy above 0.3) for every probe and watch; counts probes."""

    def __init__(self, other_cores: float) -> None:
        self.load = Load(other_cores, 1.0, other_cores > 0.3)
        self.probes = 0

    def probe(self, seconds: float = 0.5) -> Load:
        self.probes += 1
        return self.load

    @contextmanager
    def watch(self):
        window = Window()
        yield window
        window.load = self.load


def table_with(tmp_path, monitor, notes=None, timer=None):
    table = make_table(tmp_path, timer=timer, notes=notes)
    table.monitor = monitor
    return table


def calibration_passes(timer: FakeTimer) -> int:
    """How many times the timer ran the first reference network (once per calibration pass)."""
    return timer.networks.count(references(32)[0].hash())


def test_other_work_is_busy_time_not_ours_per_second() -> None:
    before, after = CpuSnapshot(10.0, 100.0, 5.0), CpuSnapshot(12.0, 103.0, 6.0)
    load = load_between(before, after, threshold=0.3)
    assert load.other_cores == pytest.approx((3.0 - 1.0) / 2.0) and load.seconds == 2.0 and load.busy
    ours_only = load_between(before, CpuSnapshot(12.0, 102.0, 7.0), threshold=0.3)
    assert ours_only.other_cores == 0.0 and not ours_only.busy  # our own threads cancel out
    unknown = load_between(CpuSnapshot(0.0, None, 0.0), CpuSnapshot(1.0, None, 0.0), threshold=0.3)
    assert not unknown.busy and unknown.other_cores == 0.0


def test_busy_seconds_are_read_from_the_cpu_line(tmp_path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 20 30 400 50 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    # user + nice + system + irq + softirq + steal; idle, iowait and guest (inside user) are not busy
    assert read_busy_seconds(stat) == pytest.approx((100 + 20 + 30 + 6 + 7 + 8) / os.sysconf("SC_CLK_TCK"))
    assert read_busy_seconds(tmp_path / "missing") is None
    stat.write_text("intr 1 2 3\n")
    assert read_busy_seconds(stat) is None


def test_the_threshold_grows_with_the_cores_a_measurement_leaves_free() -> None:
    assert busy_threshold(2, cpus=2) == pytest.approx(0.3)
    assert busy_threshold(None, cpus=2) == pytest.approx(0.3)
    assert busy_threshold(1, cpus=2) == pytest.approx(0.55)
    assert busy_threshold(2, cpus=16) == pytest.approx(0.3 + 0.25 * 14)


def test_the_check_can_be_turned_off(monkeypatch) -> None:
    monkeypatch.setenv("NAS_LOAD_CHECK", "off")
    assert isinstance(default_monitor(1), NoLoadMonitor)
    monkeypatch.setenv("NAS_LOAD_CHECK", "")
    assert isinstance(default_monitor(1), CpuLoadMonitor)


def test_a_calibration_under_load_is_provisional_and_a_quiet_one_replaces_it(tmp_path) -> None:
    notes: list[str] = []
    busy = table_with(tmp_path, FakeMonitor(1.2), notes=notes)
    g = tiny_space().random_genotype(0)
    busy.predict(g)
    saved = json.loads(busy.correction_path.read_text())
    assert saved["provisional"] is True and saved["other_cores"] == 1.2 and saved["n"] == 4
    assert len(busy.observations) == 0  # its networks are not kept as quiet data
    assert "the correction is provisional: calibrated while the machine was busy (~1.2 cores" in \
        busy.predict_interval(g).note
    assert any("busy while it calibrated (~1.2 cores" in line and "provisional" in line for line in notes)
    extra = tiny_space().random_genotype(7)
    assert busy.observe(extra, 2.0 * busy.table_ms(extra))  # kept, but no refit while provisional
    assert json.loads(busy.correction_path.read_text())["provisional"] is True

    timer = FakeTimer()
    quiet = table_with(tmp_path, FakeMonitor(0.0), timer=timer)
    quiet.predict(g)
    assert calibration_passes(timer) == CALIBRATION_PASSES  # measured again, now quiet
    saved = json.loads(quiet.correction_path.read_text())
    assert saved["provisional"] is False and saved["n"] == 5  # the 4 references and the network observed
    quiet.predict(tiny_space().random_genotype(1))
    assert calibration_passes(timer) == CALIBRATION_PASSES  # not again


def test_a_provisional_correction_is_not_measured_again_while_the_machine_stays_busy(tmp_path) -> None:
    table_with(tmp_path, FakeMonitor(1.0)).predict(tiny_space().random_genotype(0))
    timer, monitor = FakeTimer(), FakeMonitor(1.0)
    again = table_with(tmp_path, monitor, timer=timer)
    pred = again.predict(tiny_space().random_genotype(1))
    # two probes: the parts the first table profiled under load (profile again?), the calibration (measure again?)
    assert calibration_passes(timer) == 0 and monitor.probes == 2 and again.correction.provisional and pred > 0


def test_two_calibrations_of_one_table_run_once(tmp_path) -> None:
    """Two tables on one empty cache predicting at once (threads: flock locks are per open file): the
    second waits for the first's calibration and uses it."""

    class Slow(FakeTimer):
        def __call__(self, genotype, resolution, indices):
            time.sleep(0.05)
            return super().__call__(genotype, resolution, indices)

    timers, notes = [Slow(), Slow()], []
    tables = [table_with(tmp_path, FakeMonitor(0.0), timer=t, notes=notes) for t in timers]
    for t in tables:
        for r in references(32):
            t.group_sums(r)  # parts profiled first, so both reach the calibration together
    before = [calibration_passes(t) for t in timers]
    g = tiny_space().random_genotype(0)
    runs = [threading.Thread(target=t.predict, args=(g,)) for t in tables]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert sorted(calibration_passes(t) - b for t, b in zip(timers, before, strict=True)) == [0, CALIBRATION_PASSES]
    assert tables[0].correction == tables[1].correction and tables[0].correction.n == 4
    assert sum("another process is calibrating" in line for line in notes) <= 1


def test_parts_profiled_under_load_are_marked_and_profiled_again_when_quiet(tmp_path) -> None:
    notes: list[str] = []
    g = tiny_space().random_genotype(0)
    busy = table_with(tmp_path, FakeMonitor(2.0), notes=notes)
    busy.group_sums(g)
    keys = {p.key for p in network_parts(g)}
    assert all(busy.store.get(k).get("loaded") == 2.0 for k in keys)
    assert sum("parts timed now are marked" in line for line in notes) == 1
    before = len(busy)
    busy.group_sums(tiny_space().random_genotype(5))  # more parts in the same busy spell: said once per table
    assert len(busy) > before and sum("parts timed now are marked" in line for line in notes) == 1
    still_busy_timer = FakeTimer()
    table_with(tmp_path, FakeMonitor(2.0), timer=still_busy_timer).group_sums(g)
    assert still_busy_timer.keys == []  # used as they are while the machine stays busy
    timer = FakeTimer()
    quiet = table_with(tmp_path, FakeMonitor(0.0), timer=timer)
    quiet.group_sums(g)
    assert set(timer.keys) | {e["key"] for e in quiet.store.values() if "same_as" in e} >= keys
    assert not any(quiet.store.get(k).get("loaded") for k in keys)


def test_a_measurement_under_load_is_flagged_noisy() -> None:
    from predictors.latency.conditions import MeasureConfig
    from predictors.latency.load import BusyMachineWarning
    from predictors.latency.measure import measure_many

    g = tiny_space().random_genotype(0)
    config = MeasureConfig(threads=1, warmup=1, reps=3, min_reps=2, rounds=1, min_rounds=1, round_seconds=0.01)
    with pytest.warns(BusyMachineWarning, match=r"^1 of 1 groups of networks measured while the machine was busy"):
        (busy,) = measure_many([g], config, cache=None, monitor=FakeMonitor(1.5))
    assert busy.noisy
    (quiet,) = measure_many([g], config, cache=None, monitor=FakeMonitor(0.0))
    assert quiet.median_ms > 0


@pytest.mark.skipif(not HAS_PROC_STAT, reason="no /proc/stat on this platform: the load check reads it")
def test_a_real_calibration_beside_a_cpu_burning_process_is_provisional(tmp_path) -> None:
    class Sleeping(FakeTimer):  # times without using the CPU: all the busy time is the burner's
        def __call__(self, genotype, resolution, indices):
            time.sleep(0.1)
            return super().__call__(genotype, resolution, indices)

    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        notes: list[str] = []
        table = table_with(tmp_path, CpuLoadMonitor(threads=1), timer=Sleeping(), notes=notes)
        table.calibrate(32)
    finally:
        burner.kill()
        burner.wait()
    saved = json.loads(Path(table.correction_path).read_text())
    assert saved["provisional"] is True and saved["other_cores"] >= 0.8
    assert any("busy while it calibrated" in line for line in notes)
