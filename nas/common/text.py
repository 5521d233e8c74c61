"""How times and costs read on the terminal and in reports, the same in every command."""

from __future__ import annotations


def clock(seconds: float) -> str:
    """``h:mm:ss`` from an hour on, ``m:ss`` below."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def cost_text(cost: float | None, unit: str) -> str:
    """A candidate's cost: ``12.34 ms`` for latency, ``123.4M MACs`` for MACs, ``?`` when unknown."""
    if cost is None:
        return "?"
    return f"{cost:.2f} ms" if unit == "ms" else f"{cost / 1e6:.1f}M MACs"
