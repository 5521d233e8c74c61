"""Storage failures as one line: the one translation from what the system raised to what the user reads.

A full disk, a read-only folder, a database locked for too long or a lost database server reach a run
as an OSError, a sqlite3 or psycopg error, wrapped by SQLAlchemy and again by Optuna (``StorageInternalError``,
sometimes ``AssertionError: Should not reach``). :func:`diagnose` finds the cause in that chain;
:func:`storage_failure` turns it into a :class:`~searchspace.errors.StorageFailure` naming the path or URL
and what to do; :func:`storage_errors` does so around a block. A database locked by another process and a
lost connection are *transient* (the study's storage retries them, :mod:`nas.search.storage`).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from searchspace.errors import StorageFailure

WHAT = {
    "full": "the disk is full",
    "limit": "the file size limit is reached",
    "read-only": "it is read-only or not writable",
    "io": "a disk I/O error (often a full disk)",
    "locked": "the database stayed locked by another process",
    "connection": "the connection to the database server was lost",
}
TO_DO = {
    "full": "free some space (or use a folder on another disk)",
    "limit": "raise the limit (ulimit -f) or use another folder",
    "read-only": "make it writable (or use another folder)",
    "io": "check the disk and its free space",
    "locked": "stop the process that holds it",
    "connection": "check that the server is up and reachable",
}
TRANSIENT = ("locked", "connection")
SPACE = ("full", "limit", "io")  # what only a write meets (a denied permission may be a read's)
ERRNO_KINDS = {errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EFBIG: "limit", errno.EROFS: "read-only",
               errno.EACCES: "read-only", errno.EPERM: "read-only", errno.EIO: "io"}
SQL_KINDS = (("database or disk is full", "full"), ("disk i/o error", "io"), ("readonly database", "read-only"),
             ("unable to open database file", "read-only"), ("database is locked", "locked"),
             ("database table is locked", "locked"), ("file write failed", "io"))
DRIVERS = ("psycopg", "psycopg2", "pymysql", "MySQLdb")  # database server drivers (not sqlite3)


@dataclass(frozen=True)
class Trouble:
    """What went wrong with storage: a kind of :data:`WHAT`, the system's words, and the file it names."""

    kind: str
    detail: str
    path: str | None = None
    database: bool = False  # raised by the database (else by a file write)

    @property
    def transient(self) -> bool:
        return self.kind in TRANSIENT


def causes(err: BaseException) -> Iterator[BaseException]:
    """``err``, the driver error it wraps (``orig``), and its causes and contexts, each once."""
    seen: set[int] = set()
    todo = [err]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [x for x in (getattr(e, "orig", None), e.__cause__, e.__context__) if isinstance(x, BaseException)]


def diagnose(err: BaseException) -> Trouble | None:
    """The storage trouble behind ``err`` (None when it is none of :data:`WHAT`)."""
    for e in causes(err):
        if isinstance(e, OSError) and e.errno in ERRNO_KINDS:
            return Trouble(ERRNO_KINDS[e.errno], e.strerror or str(e), e.filename)
        text = first_line(e)
        for words, kind in SQL_KINDS:
            if words in text.lower():
                return Trouble(kind, text, database=words != "file write failed")
    for e in causes(err):
        if lost_connection(e):
            return Trouble("connection", first_line(e), database=True)
    return None


def lost_connection(err: BaseException) -> bool:
    """A database server's driver (or SQLAlchemy) saying the connection failed or was lost."""
    if getattr(err, "connection_invalidated", False) or type(err).__name__ == "DisconnectionError":
        return True
    return any(kind.__name__ in ("OperationalError", "InterfaceError") and kind.__module__.split(".")[0] in DRIVERS
               for kind in type(err).__mro__)  # psycopg's AdminShutdown (a server restarting) is one


def first_line(err: BaseException) -> str:
    """The first line of an error's text, without SQLAlchemy's trailers (``[SQL: ...]``, background links)."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return re.sub(r"^\((?:[\w.]+)\)\s*", "", text).strip()


def shown_url(url: str) -> str:
    """A storage URL as the user reads it: a SQLite file as its path, any password hidden."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///"):]
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def storage_failure(err: BaseException, folder: str | Path | None = None, url: str | None = None,
                    then: str = "run the same command again", waited: float | None = None,
                    kinds: tuple[str, ...] = tuple(WHAT)) -> StorageFailure | None:
    """One line for the storage trouble behind ``err`` (None when there is none, or it is not of ``kinds``):
    the file, the database (``url``) or else the ``folder`` that could not be written, what happened, and
    what to do ``then``."""
    for e in causes(err):
        if isinstance(e, StorageFailure):
            return e
    trouble = diagnose(err)
    if trouble is None or trouble.kind not in kinds:
        return None
    if trouble.database and url is not None:
        place = shown_url(url)
    else:
        place = trouble.path or (str(folder) if folder is not None else (shown_url(url) if url else "its output"))
    trouble = refined(trouble, place)
    retried = f", retried for {waited:.0f}s" if waited else ""
    verb = "reach" if trouble.kind == "connection" else "write"
    return StorageFailure(f"storage: cannot {verb} {place}: {WHAT[trouble.kind]} ({trouble.detail}{retried}); "
                          f"{TO_DO[trouble.kind]}, then {then}")


def refined(trouble: Trouble, place: str) -> Trouble:
    """A disk I/O error made precise by a look at the folder of ``place``: not writable, or out of space."""
    folder = Path(place) if Path(place).is_dir() else Path(place).parent
    if trouble.kind != "io" or not folder.is_dir():
        return trouble
    if not os.access(folder, os.W_OK | os.X_OK):
        return Trouble("read-only", trouble.detail, trouble.path, trouble.database)
    if shutil.disk_usage(folder).free < 2**20:
        return Trouble("full", trouble.detail, trouble.path, trouble.database)
    return trouble


@contextmanager
def storage_errors(folder: str | Path | None, url: str | None = None,
                   then: str = "run the same command again") -> Iterator[None]:
    """Storage trouble inside the block is raised as one-line :class:`StorageFailure`; the rest unchanged."""
    try:
        yield
    except Exception as err:
        failure = storage_failure(err, folder, url, then)
        if failure is None or failure is err:
            raise
        raise failure from None
