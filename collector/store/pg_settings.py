"""The settings rows (settings_rows.py) in PostgreSQL, shared by every collector of the cluster.
A change locks the version row, so concurrent changes from several collectors are serialised and
each gets its own version."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg

from fleetlog.collector.store.pg_dsn import mask_dsn
from fleetlog.collector.store.postgres import _first_line, connect
from fleetlog.collector.store.settings_rows import SettingsRow, write_change
from fleetlog.common.errors import StorageError

T = TypeVar("T")


class PostgresSettings:
    def __init__(self, dsn: str):
        self.dsn = dsn
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None

    def _run(self, what: str, fn: Callable[[psycopg.Connection], T]) -> T:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.dsn)
                return fn(self._conn)
            except psycopg.Error as exc:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise StorageError(f"{what} ({mask_dsn(self.dsn)}): {_first_line(exc)}") from None

    def version(self) -> int:
        return self._run("reading the settings version", lambda c: int(
            c.execute("SELECT version FROM settings_version WHERE id = 1").fetchone()[0]))  # type: ignore[index]

    def rows(self) -> tuple[int, list[SettingsRow]]:
        def read(conn: psycopg.Connection) -> tuple[int, list[SettingsRow]]:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                version = int(conn.execute("SELECT version FROM settings_version WHERE id = 1").fetchone()[0])  # type: ignore[index]
                rows = [SettingsRow(*r) for r in conn.execute(
                    "SELECT kind, name, body, created_at, changed_at, changed_by, changed_via FROM settings"
                    " ORDER BY kind, name")]
            return version, rows
        return self._run("reading the settings", read)

    def change(self, kind: str, name: str, body: str | None, who: str, via: str, now_us: int,
               exists: bool) -> int:
        def write(conn: psycopg.Connection) -> int:
            with conn.transaction():
                conn.execute("SELECT version FROM settings_version WHERE id = 1 FOR UPDATE")
                return write_change(conn.execute, "%s", kind, name, body, who, via, now_us, exists)
        return self._run(f"changing {kind} {name!r}", write)

    def touch_tokens(self, used: dict[str, int]) -> None:
        def write(conn: psycopg.Connection) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany("INSERT INTO token_uses(name, last_used) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE"
                                " SET last_used = greatest(token_uses.last_used, excluded.last_used)",
                                sorted(used.items()))
        if used:
            self._run("recording token uses", write)

    def token_uses(self) -> dict[str, int]:
        return self._run("reading token uses", lambda c: {
            name: int(at) for name, at in c.execute("SELECT name, last_used FROM token_uses")})

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
