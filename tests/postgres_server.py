"""A throw-away PostgreSQL server on the loopback interface, for the shared-study tests.

``NAS_TEST_POSTGRES_URL`` (set by ``.ci/run``, which starts a server) wins; otherwise a server is
started from Debian's binaries in a temporary folder (as the ``postgres`` user when running as root)
and stopped afterwards. :func:`postgres_server` yields None with a reason when neither is possible;
:func:`restartable_postgres` yields a server of this module's own that a test may stop and start again.
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
from dataclasses import dataclass


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
    with _server() as (server, why):
        yield (fresh_database(server.url) if server else None), why


@dataclass
class LocalServer:
    """A server this module started: its URL (an empty database on it, once made) and its data folder."""

    url: str
    pg_ctl: str
    folder: str
    port: int

    def start(self) -> None:
        subprocess.run(_as_postgres([self.pg_ctl, "-D", os.path.join(self.folder, "data"), "-l",
                                     os.path.join(self.folder, "log"), "-w", "-o",
                                     f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder}", "start"]),
                       check=True, capture_output=True, timeout=120)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: its connections are ended, as by a restart)."""
        subprocess.run(_as_postgres([self.pg_ctl, "-D", os.path.join(self.folder, "data"), "-m", mode, "stop"]),
                       capture_output=True, timeout=60)


@contextmanager
def restartable_postgres() -> Iterator[tuple[LocalServer | None, str]]:
    """(a server of this module's own with an empty database at ``.url``, "") or (None, why not)."""
    if os.environ.get("NAS_TEST_POSTGRES_URL"):
        yield None, "NAS_TEST_POSTGRES_URL names a server that this test may not stop"
        return
    with _server() as (server, why):
        if server is not None:
            server.url = fresh_database(server.url)
        yield server, why


@contextmanager
def _server() -> Iterator[tuple[LocalServer | None, str]]:
    if os.environ.get("NAS_TEST_POSTGRES_URL"):
        yield LocalServer(os.environ["NAS_TEST_POSTGRES_URL"], "", "", 0), ""
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
    port = _free_port()
    server = LocalServer(f"postgresql://nas@127.0.0.1:{port}/postgres", pg_ctl, folder, port)
    try:
        subprocess.run(_as_postgres([initdb, "-D", os.path.join(folder, "data"), "-A", "trust", "-U", "nas"]),
                       check=True, capture_output=True, timeout=120)
        server.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        yield None, f"could not start PostgreSQL ({type(err).__name__})"
        shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        yield server, ""
    finally:
        server.stop("immediate")
        time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)
