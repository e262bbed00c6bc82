"""The PostgreSQL backend (collector.store.Backend): several collectors, one database.

Opened once per collector: the writer of this collector's chain, readers over every chain,
forwarder cursors and leases shared by the cluster, and the cluster's membership (heartbeats).

A collector started while the database is down waits for it (retrying with backoff and saying so
in its log) instead of exiting; only a schema made by a newer fleetlog stops it, since waiting
would not help. While running, `up` tells whether the database answered lately: the collector's
readiness and `fleetlog_collector_storage_up` follow it, and batches are not acknowledged while it
is down (store_batch raises; the agents keep their spools and re-send).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from fleetlog.collector.store import pg_cluster
from fleetlog.collector.store.pg_dsn import mask_dsn
from fleetlog.collector.store.pg_schema import SchemaTooNew
from fleetlog.collector.store.pg_settings import PostgresSettings
from fleetlog.collector.store.postgres import PostgresStore, T, _first_line, connect
from fleetlog.collector.store.postgres_reader import PostgresReader
from fleetlog.common.errors import FleetlogError, StorageError

log = logging.getLogger("fleetlog.collector.store.postgres")

RETRY_MAX_DELAY = 5.0


class StoppedWhileWaiting(FleetlogError):
    """SIGTERM/SIGINT while waiting for the database at start: a clean stop, nothing to undo."""

    exit_code = 0


def open_waiting(open_store: Callable[[], PostgresStore], location: str) -> PostgresStore:
    """open_store() until the database answers. SIGTERM or SIGINT meanwhile stops the wait (the
    daemon's own handlers are not running yet: the event loop is busy starting the collector)."""
    stopping = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stopping.set())
    try:
        delay, warned = 0.2, False
        while True:
            try:
                store = open_store()
                if warned:
                    log.warning("database %s reachable: starting", location)
                return store
            except SchemaTooNew:
                raise
            except StorageError as exc:
                if not warned:
                    log.warning("waiting for the database: %s (retrying)", exc)
                    warned = True
                if stopping.wait(delay):
                    raise StoppedWhileWaiting(f"stopped while waiting for the database at {location}") from None
                delay = min(delay * 2, RETRY_MAX_DELAY)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class PostgresBackend:
    def __init__(self, dsn: str, collector: str, query_timeout: float | None = None):
        self.dsn = dsn
        self.collector = collector
        self.query_timeout = query_timeout
        self.location = mask_dsn(dsn)
        self.writer = open_waiting(lambda: PostgresStore(dsn, collector), self.location)
        self._cluster_conn: psycopg.Connection | None = None
        self._cluster_lock = threading.Lock()
        # Did the database answer lately? Set by the heartbeat (every few seconds) and cleared at
        # once by any failed write.
        self.up = True
        self.writer.on_down = self._down

    def _down(self) -> None:
        self.up = False

    @property
    def created(self) -> bool:
        return self.writer.created

    def reader(self) -> PostgresReader:
        return PostgresReader(self.dsn, chain=self.collector, query_timeout=self.query_timeout)

    def cursor_store(self, forwarder: str) -> pg_cluster.PostgresCursorStore:
        return pg_cluster.PostgresCursorStore(self.dsn, forwarder)

    def lease(self, forwarder: str) -> pg_cluster.PostgresLease:
        return pg_cluster.PostgresLease(self.dsn, forwarder)

    def settings_store(self) -> PostgresSettings:
        return PostgresSettings(self.dsn)

    # -- the cluster ----------------------------------------------------------------------------

    def _cluster(self, fn: Callable[[psycopg.Connection], T], what: str) -> T:
        with self._cluster_lock:
            try:
                if self._cluster_conn is None or self._cluster_conn.closed:
                    self._cluster_conn = connect(self.dsn)
                result = fn(self._cluster_conn)
                self.up = True
                return result
            except psycopg.Error as exc:
                self.up = False
                if self._cluster_conn is not None:
                    self._cluster_conn.close()
                    self._cluster_conn = None
                raise StorageError(f"{what} ({self.location}): {_first_line(exc)}") from None
            except StorageError:
                self.up = False
                raise

    def heartbeat(self, version: str, address: str, started_at_us: int,
                  nodes: list[tuple[str, str, bool, int]]) -> None:
        """Say this collector is alive and which nodes it serves; also the storage health probe."""
        size = self._cluster(lambda conn: pg_cluster.heartbeat(conn, self.collector, version, address,
                                                               started_at_us, nodes), "recording the heartbeat failed")
        self.writer.size_bytes = size

    def members(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        return self._cluster(pg_cluster.members, "reading the cluster's members failed")

    def close(self) -> None:
        with self._cluster_lock:
            if self._cluster_conn is not None:
                self._cluster_conn.close()
        self.writer.close()
