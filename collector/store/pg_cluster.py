"""What collectors sharing one PostgreSQL database know of each other: heartbeats, the nodes
connected to each, and forwarder leases and cursors.

- Every collector writes its row of `collectors` (version, address, heartbeat) and the state of the
  nodes connected to it every few seconds; `fleetlog status` on any collector lists them all.
- A forwarder configured on several collectors delivers each event once: it sends only while it
  holds its **lease**, a session advisory lock on (LEASE_SPACE, hashtext(name)) held on a
  connection of its own. When the holder dies its session ends and PostgreSQL releases the lock
  at once (kill -9 closes the socket; a vanished machine is found by the TCP keepalives set
  below, within about 15 s); another collector's runner takes the lease on its next check and
  continues from the **cursor** in `forwarder_cursors` (a seq per chain).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg

from fleetlog.collector.store import pg_schema
from fleetlog.collector.store.pg_dsn import CONNECT_TIMEOUT, scalar

log = logging.getLogger("fleetlog.collector.store.cluster")

# Server-side keepalives for lease sessions: a holder whose machine vanished without closing its
# socket is noticed after idle + interval * count = 5 + 2 * 3 = 11 s.
_KEEPALIVES = ("SET tcp_keepalives_idle = 5", "SET tcp_keepalives_interval = 2", "SET tcp_keepalives_count = 3")
_CLIENT_KEEPALIVES: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


def _connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT, **_CLIENT_KEEPALIVES)


class PostgresLease:
    """The right to run one forwarder in the cluster; `held()` is checked before each send."""

    def __init__(self, dsn: str, forwarder: str):
        self.dsn, self.forwarder = dsn, forwarder
        self._conn: psycopg.Connection | None = None
        self._held = False
        self._lock = threading.Lock()

    def held(self) -> bool:
        """True while this collector holds the lease; tries to take it when free. Never raises:
        a database that cannot be reached means the lease is not held."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._held = False
                    self._conn = _connect(self.dsn)
                    for statement in _KEEPALIVES:
                        self._conn.execute(statement)
                if self._held:
                    self._conn.execute("SELECT 1")    # the session (and with it the lock) is alive
                    return True
                self._held = bool(scalar(self._conn, "SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                         (pg_schema.LEASE_SPACE, self.forwarder)))
                if self._held:
                    log.info("forwarder %s: lease taken", self.forwarder)
                return self._held
            except psycopg.Error as exc:
                if self._held:
                    log.warning("forwarder %s: lease lost (%s)", self.forwarder, str(exc).strip().splitlines()[0])
                self._drop()
                return False

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass   # the session is gone either way; the lock with it
            self._conn = None

    def release(self) -> None:
        """Give the lease up at once (a clean stop: the next holder need not wait for the
        session's end to be noticed)."""
        with self._lock:
            if self._held and self._conn is not None and not self._conn.closed:
                try:
                    self._conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))",
                                       (pg_schema.LEASE_SPACE, self.forwarder))
                except psycopg.Error:
                    pass   # the session is going anyway; closing it frees the lock
            self._drop()


class PostgresCursorStore:
    """A forwarder's cursor (chain -> last seq delivered), shared by the cluster."""

    def __init__(self, dsn: str, forwarder: str):
        self.dsn, self.forwarder = dsn, forwarder
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = _connect(self.dsn)
        return self._conn

    def load(self) -> dict[str, int]:
        from fleetlog.collector.store.postgres import translate
        with translate(f"reading the cursor of forwarder {self.forwarder}"):
            return dict(self._connection().execute(
                "SELECT chain, seq FROM forwarder_cursors WHERE forwarder = %s", (self.forwarder,)).fetchall())

    def save(self, cursor: dict[str, int]) -> None:
        from fleetlog.collector.store.postgres import translate
        if not cursor:
            return
        now = int(time.time() * 1_000_000)
        with translate(f"saving the cursor of forwarder {self.forwarder}"):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                # greatest(): a cursor never moves back, even if a collector that lost its lease
                # a moment ago saves late.
                cur.executemany(
                    "INSERT INTO forwarder_cursors(forwarder, chain, seq, updated_at) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (forwarder, chain) DO UPDATE SET seq = greatest(forwarder_cursors.seq,"
                    " EXCLUDED.seq), updated_at = EXCLUDED.updated_at",
                    [(self.forwarder, chain, seq, now) for chain, seq in sorted(cursor.items())])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def heartbeat(conn: psycopg.Connection, collector: str, version: str, address: str, started_at_us: int,
              nodes: list[tuple[str, str, bool, int]]) -> int:
    """Record this collector as alive now, and the nodes (name, ip, connected, last seen µs) whose
    streams it serves. A node connected to this collector is claimed by it; one that disconnected
    is only marked so if no other collector has claimed it since."""
    now = int(time.time() * 1_000_000)
    with conn.transaction():
        conn.execute("INSERT INTO collectors(name, version, address, started_at, heartbeat_at)"
                     " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version,"
                     " address = EXCLUDED.address, started_at = EXCLUDED.started_at,"
                     " heartbeat_at = EXCLUDED.heartbeat_at", (collector, version, address, started_at_us, now))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO nodes(name, collector, ip, connected, last_seen) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET collector = EXCLUDED.collector, ip = EXCLUDED.ip,"
                " connected = EXCLUDED.connected, last_seen = greatest(nodes.last_seen, EXCLUDED.last_seen)"
                " WHERE EXCLUDED.connected OR nodes.collector = EXCLUDED.collector",
                [(name, collector, ip, connected, last_seen) for name, ip, connected, last_seen in sorted(nodes)])
    return int(scalar(conn, "SELECT pg_database_size(current_database())"))


def members(conn: psycopg.Connection) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(collectors: name, version, address, started_at µs, heartbeat_at µs;
        nodes: name, collector, ip, connected, last_seen µs), sorted by name."""
    collectors = conn.execute("SELECT name, version, address, started_at, heartbeat_at FROM collectors"
                              " ORDER BY name").fetchall()
    nodes = conn.execute("SELECT name, collector, ip, connected, last_seen FROM nodes ORDER BY name").fetchall()
    return collectors, nodes
