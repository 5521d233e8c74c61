"""Errors raised for bad genotypes and bad user input, and for storage that fails under a run.

Every error carries the field path, so the CLI can print one line such as
``stages[3].blocks[0].kernel: 4 is not one of 3, 5, 7`` and exit with status 2.
"""

from __future__ import annotations


class NasError(Exception):
    """Base class of all user-facing errors: the CLI prints ``str(err)`` and exits 2."""


class StorageFailure(Exception):
    """Outputs or the study's database could not be written (a full disk, a read-only folder, a lost
    database server): the CLI prints ``str(err)``, one line naming the path or URL and what to do, and
    exits 1. What was finished before is kept."""


class GenotypeError(NasError, ValueError):
    """A genotype that does not validate. ``path`` names the offending field."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)
