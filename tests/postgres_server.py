"""A throw-away PostgreSQL server on the loopback interface, for the shared-study tests.

``NAS_TEST_POSTGRES_URL`` (set by ``.ci/run``, which starts a server) wins; otherwise a server is
started from Debian's binaries in a temporary folder (as the ``postgres`` user when running as root)
and stopped afterwards. :func:`postgres_url` returns None with a reason when neither is possible.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def fresh_database(server_url: str) -> str:
    """A new, empty database on the server at ``server_url``; returns its URL."""
    import psycopg

    name = f"nas_test_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(server_url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def postgres_server() -> Iterator[tuple[str | None, str]]:
    """(URL of an empty database, "") or (None, why not)."""
    with _server() as (url, why):
        yield (fresh_database(url) if url else None), why


@contextmanager
def _server() -> Iterator[tuple[str | None, str]]:
    if os.environ.get("NAS_TEST_POSTGRES_URL"):
        yield os.environ["NAS_TEST_POSTGRES_URL"], ""
        return
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        yield None, "no PostgreSQL server binaries (Debian package postgresql)"
        return
    if os.geteuid() == 0 and not shutil.which("runuser"):
        yield None, "running as root without runuser: PostgreSQL refuses to run as root"
        return
    folder = tempfile.mkdtemp(prefix="nas-pg-")
    os.chmod(folder, 0o777)
    data, port = os.path.join(folder, "data"), _free_port()
    try:
        subprocess.run(_as_postgres([initdb, "-D", data, "-A", "trust", "-U", "nas"]), check=True,
                       capture_output=True, timeout=120)
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-l", os.path.join(folder, "log"), "-w", "-o",
                                     f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}", "start"]),
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        yield None, f"could not start PostgreSQL ({type(err).__name__})"
        shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        yield f"postgresql://nas@127.0.0.1:{port}/postgres", ""
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-m", "immediate", "stop"]), capture_output=True,
                       timeout=60)
        time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)
