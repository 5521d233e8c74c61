"""How busy this machine is with work that is not ours, so latency work measured under load is not kept as quiet.

A latency measured while another process runs on the same cores is slower than the network is (two
``nas latency --predict`` calls on an empty cache beside a training calibrated a correction that predicts
MobileNetV3-Small at 13.4 ms where the quiet machine measures ~7.5 ms). The signal is CPU time that is
not ours: the busy time of every CPU in ``/proc/stat`` (user, nice, system, irq, softirq and steal: the
time a hypervisor gave our CPUs to someone else) minus this process's own CPU time (``os.times``, all
threads and waited-for children), per second of wall time, in cores. Our own measuring threads cancel
out, so the figure is the same whether we measure or idle.

:class:`CpuLoadMonitor` is the real one; latency code receives a monitor as a collaborator
(:class:`LoadMonitor`), so tests hand in a fake. Where ``/proc/stat`` does not exist (macOS, Windows)
nothing is detected and every window reads as quiet; ``NAS_LOAD_CHECK=off`` turns the check off where
other load is known and accepted (:func:`default_monitor`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PROC_STAT = Path("/proc/stat")
BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (guest time is inside user/nice)
BASE_THRESHOLD = 0.3  # cores of other work that always count as busy (a daemon's wake-ups stay far below)
SPARE_SHARE = 0.25  # and this share of the cores a measurement leaves unused (its threads run on the rest)
PROBE_SECONDS = 0.5  # a probe before latency work: long enough for 10 ms jiffies, short beside the work
SWITCH = "NAS_LOAD_CHECK"  # "off": no check (other load accepted, e.g. tests running beside each other)


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU time counters at one moment: wall clock, all CPUs' busy seconds (None: unknown), our own CPU seconds."""

    wall: float
    busy_s: float | None
    own_s: float


@dataclass(frozen=True)
class Load:
    """Other work over a window: ``other_cores`` busy on average, ``seconds`` long, ``busy`` above the threshold."""

    other_cores: float
    seconds: float
    busy: bool

    def describe(self) -> str:
        return f"~{self.other_cores:.1f} cores of other work over {self.seconds:.0f}s"


QUIET = Load(0.0, 0.0, False)


class BusyMachineWarning(UserWarning):
    """Latency work ran while other work did (a UserWarning: shown where noisy-measurement warnings are not)."""


def read_busy_seconds(path: Path = PROC_STAT) -> float | None:
    """Busy seconds of all CPUs since boot, from the aggregate ``cpu`` line of ``/proc/stat``; None without one."""
    try:
        first = path.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    return sum(values[i] for i in BUSY_COLUMNS if i < len(values)) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's CPU time: every thread, and children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def snapshot(path: Path = PROC_STAT) -> CpuSnapshot:
    return CpuSnapshot(time.monotonic(), read_busy_seconds(path), own_cpu_seconds())


def busy_threshold(threads: int | None, cpus: int | None = None) -> float:
    """Cores of other work above which a measurement on ``threads`` threads counts as under load:
    :data:`BASE_THRESHOLD` plus :data:`SPARE_SHARE` of the cores it leaves free (0.3 on a 2-core machine
    measuring on both cores, 0.55 on one of them, 3.75 measuring on 2 threads of 16)."""
    cpus = cpus or os.cpu_count() or 1
    used = min(threads or cpus, cpus)
    return BASE_THRESHOLD + SPARE_SHARE * (cpus - used)


def load_between(before: CpuSnapshot, after: CpuSnapshot, threshold: float) -> Load:
    """The other work between two snapshots (quiet where the busy time is unknown or no time passed)."""
    seconds = after.wall - before.wall
    if before.busy_s is None or after.busy_s is None or seconds <= 0:
        return Load(0.0, max(seconds, 0.0), False)
    other = max(0.0, (after.busy_s - before.busy_s) - (after.own_s - before.own_s)) / seconds
    return Load(other, seconds, other > threshold)


class Window:
    """What :meth:`LoadMonitor.watch` yields: its ``load`` is set when the ``with`` block ends."""

    load: Load = QUIET


class LoadMonitor(Protocol):
    """The contract latency code uses: a short probe now, or a watch over a piece of work."""

    def probe(self, seconds: float = PROBE_SECONDS) -> Load: ...

    def watch(self) -> AbstractContextManager[Window]: ...


class CpuLoadMonitor:
    """Other work from ``/proc/stat`` against this process's CPU time, for a measurement on ``threads`` threads."""

    def __init__(self, threads: int | None = None, path: Path = PROC_STAT) -> None:
        self.threshold = busy_threshold(threads)
        self.path = path

    def probe(self, seconds: float = PROBE_SECONDS) -> Load:
        """The other work over the next ``seconds`` (this process sleeps meanwhile)."""
        before = snapshot(self.path)
        time.sleep(seconds)
        return load_between(before, snapshot(self.path), self.threshold)

    @contextmanager
    def watch(self) -> Iterator[Window]:
        """``with monitor.watch() as window:`` around latency work; ``window.load`` is the other work during it."""
        window = Window()
        before = snapshot(self.path)
        yield window
        window.load = load_between(before, snapshot(self.path), self.threshold)


class NoLoadMonitor:
    """Every window quiet: the check turned off."""

    def probe(self, seconds: float = PROBE_SECONDS) -> Load:
        return QUIET

    @contextmanager
    def watch(self) -> Iterator[Window]:
        yield Window()


def default_monitor(threads: int | None = None) -> LoadMonitor:
    """The monitor latency code uses unless handed one: :class:`CpuLoadMonitor`, or none with ``NAS_LOAD_CHECK=off``."""
    if os.environ.get(SWITCH, "").strip().lower() in ("off", "0", "no", "false"):
        return NoLoadMonitor()
    return CpuLoadMonitor(threads)
