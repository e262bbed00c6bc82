"""The settings rows (settings_rows.py) in the SQLite main file, on a connection of their own:
a change is one short transaction beside the writer's (busy_timeout waits for its commit)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from fleetlog.collector.store.settings_rows import SettingsConflict, SettingsRow, write_change
from fleetlog.common.errors import StorageError

T = TypeVar("T")


class SqliteSettings:
    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the settings: {exc}") from None

    def _run(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StorageError(f"{self.path}: {what}: {exc}") from None

    def version(self) -> int:
        return self._run("reading the settings version", lambda c: int(
            c.execute("SELECT version FROM settings_version WHERE id = 1").fetchone()[0]))

    def rows(self) -> tuple[int, list[SettingsRow]]:
        def read(conn: sqlite3.Connection) -> tuple[int, list[SettingsRow]]:
            conn.execute("BEGIN")
            try:
                version = int(conn.execute("SELECT version FROM settings_version WHERE id = 1").fetchone()[0])
                rows = [SettingsRow(*r) for r in conn.execute(
                    "SELECT kind, name, body, created_at, changed_at, changed_by, changed_via FROM settings"
                    " ORDER BY kind, name")]
            finally:
                conn.execute("COMMIT")
            return version, rows
        return self._run("reading the settings", read)

    def change(self, kind: str, name: str, body: str | None, who: str, via: str, now_us: int,
               exists: bool) -> int:
        def write(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = write_change(conn.execute, "?", kind, name, body, who, via, now_us, exists)
            except SettingsConflict:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return version
        return self._run(f"changing {kind} {name!r}", write)

    def touch_tokens(self, used: dict[str, int]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO token_uses(name, last_used) VALUES (?, ?) ON CONFLICT(name) DO UPDATE"
                             " SET last_used = max(last_used, excluded.last_used)", sorted(used.items()))
            conn.execute("COMMIT")
        if used:
            self._run("recording token uses", write)

    def token_uses(self) -> dict[str, int]:
        return self._run("reading token uses", lambda c: dict(c.execute("SELECT name, last_used FROM token_uses")))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
