"""One node's latency measurements kept apart from its trainings, across processes.

A latency taken while another process trains on the same cores is not a latency (two Ray workers on a
2-core node recorded 858 and 1,069 ms for networks that measure ~225 ms alone). :class:`NodeLock` is a
writer-preferring lock over two ``flock`` files in the node's temporary folder: a measurement closes the
gate (new trainings wait there), then waits until the trainings already running have ended, measures,
and opens the gate again. Trainings share the room with each other. The kernel releases a dead
process's locks, so a killed worker never blocks the node.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def default_lock_folder() -> Path:
    """The node-local folder both locks live in (one per user: all of a user's searches on the node)."""
    return Path(tempfile.gettempdir()) / f"nas-node-{os.getuid()}"


class NodeLock:
    """``with lock.measuring():`` around a measurement, ``with lock.training():`` around a training."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_lock_folder()
        self.waited = 0.0  # seconds this process's measurements waited for trainings to end

    @contextmanager
    def measuring(self) -> Iterator[None]:
        start = time.monotonic()
        with self._locked("gate", fcntl.LOCK_EX), self._locked("room", fcntl.LOCK_EX):
            self.waited += time.monotonic() - start
            yield

    @contextmanager
    def training(self) -> Iterator[None]:
        with self._locked("gate", fcntl.LOCK_SH):
            pass  # waits while a measurement holds the gate, so a waiting measurement is not starved
        with self._locked("room", fcntl.LOCK_SH):
            yield

    @contextmanager
    def _locked(self, name: str, mode: int) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock


@contextmanager
def exclusive_lock(path: str | os.PathLike, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); ``on_wait()`` is called once if another
    process holds it first. The kernel releases a killed process's lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
