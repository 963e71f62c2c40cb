"""A real PostgreSQL server for the tests: initdb + pg_ctl in a temp folder, on a free local port.

The server binaries refuse to run as root, and tests (and CI) run as root: the server then runs as
the ``postgres`` OS user through ``runuser``, in a folder that user owns. One server serves the
whole test session (started on first use, stopped at exit); each test gets its own database.

Use in a test module::

    from tests.edge.postgres_server import pg_url, postgres  # noqa: F401  (fixtures)
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

SEARCH_DIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in SEARCH_DIRS:
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    root: Path
    port: int
    initdb: str
    pg_ctl: str
    run_as: list[str]  # prefix that runs a command as the server's OS user (empty when not root)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, self.pg_ctl, "-D", str(self.data), *args],
            check=True, capture_output=True, timeout=60,
        )

    def init(self) -> None:
        subprocess.run(
            [*self.run_as, self.initdb, "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off -c max_connections=100"
        )
        self._pg_ctl("-o", options, "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every open connection at once: what a crashed or rebooted server does to
        its clients."""
        self._pg_ctl("-m", mode, "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        result = subprocess.run(
            [*self.run_as, self.pg_ctl, "-D", str(self.data), "status"], capture_output=True
        )
        return result.returncode == 0

    def log_tail(self, lines: int = 30) -> str:
        log = self.root / "server.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def destroy(self) -> None:
        if self.is_running():
            try:
                self.stop("immediate")
            except subprocess.SubprocessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


_server: PostgresServer | None = None
_failure: str | None = None


def shared_server() -> PostgresServer:
    """The session's server, started on first call; skips the test when PostgreSQL is missing."""
    global _server, _failure
    if _server is not None:
        if not _server.is_running():  # a fault test that stopped it and failed before restarting
            _server.start()
        return _server
    if _failure is not None:
        pytest.fail(_failure)
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
                    "/usr/lib/postgresql/*/bin; install the postgresql package to run these tests")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="qc-pg-"))
    if os.geteuid() == 0:
        # The server refuses root. /tmp/pytest-of-root is private to root, hence mkdtemp in /tmp.
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--"]
    server = PostgresServer(root, free_port(), initdb, pg_ctl, run_as)
    try:
        server.init()
        server.start()
    except subprocess.CalledProcessError as exc:
        _failure = (f"could not start PostgreSQL in {root}: {exc.stderr.decode(errors='replace')}"
                    f"\n{server.log_tail()}")
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(_failure)
    atexit.register(server.destroy)
    _server = server
    return server


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    return shared_server()


@pytest.fixture
def pg_url(postgres: PostgresServer):
    """A fresh, empty database on the session's server; dropped after the test."""
    name = postgres.create_database()
    yield postgres.url(name)
    if not postgres.is_running():
        postgres.start()
    postgres.drop_database(name)
