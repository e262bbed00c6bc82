"""A real PostgreSQL server for the tests, started from Debian's packages in a temporary directory.

`PgServer` runs initdb and `postgres` on a free 127.0.0.1 port, with trust authentication for
the `postgres` role on loopback only. PostgreSQL refuses to run as root, so when the tests run as
root the data directory is handed to the `postgres` system user and the server runs as that
user. Every wait has a deadline; stop() ends with SIGKILL if a fast shutdown does not finish, so
a test run never hangs on the server. Fault tests use stop()/start() to take the database away
and bring it back on the same port.
"""

from __future__ import annotations

import atexit
import glob
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import psycopg

from tests.harness import free_port


def _bin_dir() -> pathlib.Path:
    """The newest installed server's binaries (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(pathlib.Path(p).parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
                           "run `make system-deps` (installs Debian's postgresql package)")
    return pathlib.Path(found[-1]).parent


class PgServer:
    def __init__(self, durable: bool = False) -> None:
        self.durable = durable     # fsync on (benchmarks, beside SQLite's synchronous=full)
        self.bin = _bin_dir()
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="fleetlog-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._as: dict = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = {"user": user.pw_uid, "group": user.pw_gid}
        subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-sync", "--locale=C"],
                       check=True, capture_output=True, timeout=120, **self._as)
        atexit.register(self.kill)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it accepts connections."""
        # fsync off for tests: they kill collectors, never the machine; it keeps commits cheap on
        # a shared 2-core box. Sockets in our own directory, TCP on loopback only.
        sync = "on" if self.durable else "off"
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                 "-c", f"fsync={sync}", "-c", f"full_page_writes={sync}", "-c", "max_connections=300",
                 "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning"],
                stdout=log, stderr=log, start_new_session=True, **self._as)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: "
                                   + (self.root / "server.log").read_text()[-2000:])
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"postgres did not accept connections within {timeout}s") from None
                time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint, exit), SIGKILL at the deadline."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
            # A killed postmaster leaves its children to exit on their own; the data directory
            # goes with them, so wait briefly for the lock file's owner to be gone.

    def create_database(self) -> str:
        """A new, empty database; returns its DSN."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        name = dsn.rsplit("/", 1)[1]
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            conn.execute("SET statement_timeout = '20s'")
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
