"""The run's Optuna storage: SQLite in the run folder, or a shared database (PostgreSQL) for many workers.

Every worker sends a heartbeat while a trial runs; a trial whose heartbeat stopped for longer than the
grace period (its process died) is marked failed by the next worker that starts a trial, with the
reason recorded, and its network is queued to run again (:func:`nas.search.retry.retry_stale`). A worker
never touches a trial whose heartbeat is alive, so joining a live study with ``--resume`` is safe. Two
workers creating the schema of a fresh database at once is retried.

A lost connection to a database server (a PostgreSQL restart) or a SQLite file locked by another
process is retried with back-off for up to ``patience`` seconds (:class:`PatientStorage`), then raised
as one line (:class:`~searchspace.errors.StorageFailure`); a missed heartbeat is not an error.
"""

from __future__ import annotations

import functools
import importlib.util
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from nas.common.failures import diagnose, shown_url, storage_failure
from nas.search.retry import RESUME, retry_stale
from searchspace.errors import NasError

HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 20
SCHEMES = ("sqlite", "postgresql", "mysql")
NO_HEARTBEAT = "interrupted: its process stopped (no heartbeat)"
PATIENCE_SECONDS = 60.0
RETRIED = ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
           "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
           "get_all_studies", "create_new_trial", "set_trial_param", "get_trial_id_from_study_id_trial_number",
           "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
           "set_trial_system_attr", "get_trial", "get_all_trials", "get_best_trial", "get_trial_user_attrs",
           "get_trial_system_attrs", "_get_stale_trial_ids", "_create_new_trial", "_get_best_trial_id", "_get_trials",
           "_set_trial_param")  # every RDBStorage method that reads or writes (the last: what Optuna's cache calls)


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


class PatientStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose every call is retried with back-off (0.5 s doubling to 10 s) for up to
    ``patience`` seconds while the database is unreachable or locked; then a one-line StorageFailure naming
    ``shown`` (the URL, password hidden). A heartbeat that fails is skipped: the next one comes."""

    def __init__(self, url: str, shown: str, patience: float = PATIENCE_SECONDS, **kwargs: Any) -> None:
        self.shown, self.patience = shown, patience
        super().__init__(url, **kwargs)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as err:
            if diagnose(err) is None:
                raise


def _patiently(method: Callable) -> Callable:
    """``method`` retried while its failure is transient (:func:`nas.common.failures.diagnose`)."""

    @functools.wraps(method)
    def call(self: PatientStorage, *args: Any, **kwargs: Any) -> Any:
        start, delay, warned = time.monotonic(), 0.5, False
        while True:
            try:
                result = method(self, *args, **kwargs)
                if warned:
                    warnings.warn(f"storage: {self.shown} answers again after {time.monotonic() - start:.0f}s",
                                  stacklevel=2)
                return result
            except Exception as err:
                trouble, waited = diagnose(err), time.monotonic() - start
                if trouble is None or not trouble.transient:
                    raise
                if waited >= self.patience:
                    raise storage_failure(err, url=self.shown, then=RESUME, waited=waited) from None
                if not warned:
                    warnings.warn(f"storage: {self.shown}: {trouble.detail}; retrying for up to {self.patience:g}s",
                                  stacklevel=2)
                    warned = True
                time.sleep(min(delay, self.patience - waited))
                delay = min(2 * delay, 10.0)

    return call


for _name in RETRIED:
    setattr(PatientStorage, _name, _patiently(getattr(optuna.storages.RDBStorage, _name)))


def open_storage(url: str, attempts: int = 5, heartbeat: int = HEARTBEAT_SECONDS,
                 grace: int = GRACE_SECONDS, patience: float = PATIENCE_SECONDS) -> PatientStorage:
    """An RDB storage with heartbeats (a dead worker's trial queued again) that waits out a lost connection
    or a lock for ``patience`` seconds; schema creation raced by another worker is retried."""
    import sqlalchemy.exc

    full = driver_url(url)
    engine = {} if full.startswith("sqlite") else {"pool_pre_ping": True}  # a server restart: reconnect
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return PatientStorage(full, shown_url(url), patience, engine_kwargs=engine,
                                      heartbeat_interval=heartbeat, grace_period=grace,
                                      heartbeat_stale_trial_callback=retry_stale)
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
