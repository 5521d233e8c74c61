"""SIGTERM is Ctrl-C: what ``timeout``, ``docker stop``, Kubernetes and Slurm send before they kill.

While :func:`sigterm_as_interrupt` is active (the ``nas`` command line holds it around every command),
the first SIGTERM raises :class:`Terminated`, a :class:`KeyboardInterrupt`, in the main thread: the code
that handles Ctrl-C (mark this process's running work interrupted, write the outputs it has) handles
it the same way. A second SIGTERM ends the process at once. :func:`stop_name` and :func:`exit_code`
say which of the two it was; :func:`keep_sigterm` keeps the handler through code that would replace it
(``ray.init`` installs one that exits at once).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGINT_EXIT = 128 + signal.SIGINT    # 130: the shell's code for a process ended by Ctrl-C
SIGTERM_EXIT = 128 + signal.SIGTERM  # 143: ... by SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM: handled wherever Ctrl-C is."""


def stop_name(err: BaseException) -> str:
    """``SIGTERM`` or ``Ctrl-C``: what stopped the process (for reasons and messages)."""
    return "SIGTERM" if isinstance(err, Terminated) else "Ctrl-C"


def exit_code(err: BaseException) -> int:
    """The conventional exit status of a process stopped by ``err``: 143 for SIGTERM, 130 for Ctrl-C."""
    return SIGTERM_EXIT if isinstance(err, Terminated) else SIGINT_EXIT


def _on_sigterm(signum: int, frame: object) -> None:
    """First SIGTERM: raise :class:`Terminated`; a second one gets the default action (the process ends)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread while the block runs (elsewhere: unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)



@contextmanager
def keep_sigterm() -> Iterator[None]:
    """The SIGTERM handler as it was before the block, whatever the block installs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
