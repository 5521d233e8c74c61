"""Figures written as files: matplotlib without a display, saved atomically (a reader never sees half)."""

from __future__ import annotations

import os
from typing import Any

from searchspace.textio import atomic_file


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed); imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> None:
    """Write ``fig`` as a PNG at ``path`` atomically and close it."""
    with atomic_file(path, binary=True) as f:
        fig.savefig(f, format="png", dpi=dpi)
    pyplot().close(fig)
