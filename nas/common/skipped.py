"""The unreadable images a run skipped (``skip_bad_images``): listed in ``bad_images.txt`` of its folder,
one ``PATH: cannot read image (WHY)`` line each, and counted in one warning."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from searchspace.textio import write_text_atomic

BAD_IMAGES = "bad_images.txt"


def list_skipped(folder: Path, skipped: Sequence[str]) -> Path | None:
    """Write ``folder/bad_images.txt`` and warn with the count; None (and nothing written) when none was skipped."""
    if not skipped:
        return None
    path = write_text_atomic(Path(folder) / BAD_IMAGES, "".join(f"{line}\n" for line in skipped))
    noun = "image" if len(skipped) == 1 else "images"
    warnings.warn(f"skipped {len(skipped)} unreadable {noun} (skip_bad_images); listed in {path}", stacklevel=2)
    return path
