"""The run's Optuna storage: SQLite in the run folder, or a shared database (PostgreSQL) for many workers.

Every worker sends a heartbeat while a trial runs; a trial whose heartbeat stopped for longer than the
grace period (its process died) is marked failed by the next worker that starts a trial, with the
reason recorded. A worker never touches a trial whose heartbeat is alive, so joining a live study
with ``--resume`` is safe. Two workers creating the schema of a fresh database at once is retried.
"""

from __future__ import annotations

import importlib.util
import random
import time
import warnings
from pathlib import Path

import optuna

from searchspace.errors import NasError

HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 20
SCHEMES = ("sqlite", "postgresql", "mysql")
NO_HEARTBEAT = "interrupted: its process stopped (no heartbeat)"


def driver_url(url: str) -> str:
    """``postgresql://`` with the installed driver: psycopg 3 unless psycopg2 is present (SQLAlchemy's default)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise NasError(f"storage: {url!r} is not a database URL; use sqlite:///PATH or postgresql://USER@HOST/DB")
    base = scheme.split("+")[0]
    if base not in SCHEMES:
        raise NasError(f"storage: {scheme!r} is not supported; use sqlite:///PATH or postgresql://USER@HOST/DB")
    if scheme in ("postgresql", "postgres"):
        if importlib.util.find_spec("psycopg2") is not None:
            return f"postgresql://{rest}"
        if importlib.util.find_spec("psycopg") is None:
            raise NasError("storage: PostgreSQL needs a driver: pip install 'nas[postgres]' (psycopg 3), then use "
                           "postgresql://USER:PASSWORD@HOST:PORT/DB")
        return f"postgresql+psycopg://{rest}"
    if base == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        folder = Path(path).parent if path and path != ":memory:" else None
        if folder is not None and not folder.is_dir():
            raise NasError(f"storage: cannot open {url!r}: the folder {str(folder)!r} does not exist")
    return url


def fail_dead_workers_trials(study: optuna.Study) -> None:
    """Mark the trials of workers whose heartbeat stopped as failed (live workers' trials are untouched).

    A finished trial cannot take attributes, so such a trial is the one failure without a reason:
    trials.csv and report.md show :data:`NO_HEARTBEAT` for it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def open_storage(url: str, attempts: int = 5, heartbeat: int = HEARTBEAT_SECONDS,
                 grace: int = GRACE_SECONDS) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats; schema creation raced by another worker is retried."""
    import sqlalchemy.exc

    full = driver_url(url)
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(full, heartbeat_interval=heartbeat, grace_period=grace)
        except sqlalchemy.exc.DBAPIError as err:
            racing = isinstance(err, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)) or any(
                text in str(err) for text in ("already exists", "database is locked"))
            if not racing or attempt == attempts - 1:
                raise NasError(f"storage: cannot open {url!r}: {_first_line(err)}") from None
            time.sleep(0.2 + random.random())  # another worker is creating the tables: let it finish
        except (sqlalchemy.exc.ArgumentError, ImportError, ValueError) as err:
            raise NasError(f"storage: cannot open {url!r}: {_first_line(err)}") from None
    raise AssertionError("unreachable")


def _first_line(err: BaseException) -> str:
    return (str(getattr(err, "orig", None) or err).strip().splitlines() or ["unknown error"])[0]
