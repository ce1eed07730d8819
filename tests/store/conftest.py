"""A throwaway PostgreSQL server for the session: Debian's binaries, a cluster in a temporary folder, 127.0.0.1.

`make test` installs the server when it is missing (scripts/postgres.sh). The cluster listens on a free
port of the loopback interface only, trusts nothing (password logins over TCP), writes without fsync,
and is stopped and deleted when the session ends. PostgreSQL refuses to run as root: as root, the
server runs as the `postgres` user that Debian's package creates.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER, PASSWORD = "dlcompat", "test-password"
INSTALL_HINT = "run `bash scripts/postgres.sh` (as `make test` does) to install Debian's PostgreSQL server"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: runs against the session's throwaway PostgreSQL server")


@dataclass
class PostgresServer:
    port: int
    folder: Path

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database (dropped first if a previous test left it); its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _binaries() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.fail(f"no PostgreSQL server (no /usr/lib/postgresql/*/bin/initdb): {INSTALL_HINT}")
    return found[-1].parent


def _server_user() -> tuple[list[str], int | None, int | None]:
    """The prefix that runs a command as the server's user, and that user's uid and gid (None: this user)."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(f"running as root, and there is no `postgres` user to run the server as: {INSTALL_HINT}")
    return ["runuser", "-u", "postgres", "--"], entry.pw_uid, entry.pw_gid


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        server_log = log.read_text()[-2000:] if log is not None and log.exists() else ""
        pytest.fail(f"could not {what} a PostgreSQL server ({' '.join(command)} exited {result.returncode}): "
                    f"{result.stderr.strip()[-2000:]} {server_log}")


def _start(bin_dir: Path, as_user: list[str], data: Path, folder: Path) -> int:
    """Start the cluster on a free port (another process may take the port first: then try another)."""
    log = folder / "server.log"
    for attempt in range(3):
        port = _free_port()
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=300")
        result = subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                                 "-t", "60", "-o", options, "start"], capture_output=True, text=True, timeout=120)
        if result.returncode == 0:
            return port
        if attempt == 2:
            pytest.fail(f"could not start a PostgreSQL server: {result.stderr.strip()} "
                        f"{log.read_text()[-2000:] if log.exists() else ''}")
        time.sleep(0.5)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = _binaries()
    as_user, uid, gid = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="dlcompat-postgres-"))
    data, password_file = folder / "data", folder / "password"
    password_file.write_text(PASSWORD + "\n")
    if uid is not None and gid is not None:
        for path in (folder, password_file):
            os.chown(path, uid, gid)
    started = False
    try:
        _run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={password_file}",
              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"],
             "initialise")
        port = _start(bin_dir, as_user, data, folder)
        started = True
        yield PostgresServer(port=port, folder=folder)
    finally:
        if started:
            subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
