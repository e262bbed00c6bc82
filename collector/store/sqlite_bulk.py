"""Writing one transaction's rows into its partition files, several files at once.

Python's sqlite3 holds the GIL for every row it binds and lets it go only inside sqlite3_step,
so two threads inserting rows pass the GIL back and forth per row and together store less than
one (issue 19; docs/benchmarks.md). The C extension `_sqlite_native` inserts a whole batch with
the GIL let go: with it, the partitions of one transaction (the writer shards of the hot period,
and other tiers) are filled by several threads at once, and the collector's event loop runs
beside them. Without it (not built), the same rows go through executemany, one file after the
other: the same stored bytes, slower.

`PartitionConnection` is the writer's connection to a partition file (a `sqlite3.Connection`,
used as before for reads and deletes) plus, when the extension is usable, a second, native
connection to the same file that does the batch inserts.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import pathlib
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from fleetlog.collector.store import ROW_COLUMNS

log = logging.getLogger("fleetlog.collector.store")

INSERT_EVENT = f"INSERT INTO events({', '.join(ROW_COLUMNS)}) VALUES ({','.join('?' * len(ROW_COLUMNS))})"
INSERT_FTS = "INSERT INTO events_fts(rowid, message) VALUES (?, ?)"
_SEQ = ROW_COLUMNS.index("seq")
_MESSAGE = ROW_COLUMNS.index("message")
BUSY_TIMEOUT_MS = 10_000

# SQLite's primary result codes (sqlite.org/rescode.html), to name a native error the way the
# sqlite3 module does: the writer tells a full disk from a bug by `sqlite_errorname`.
_PRIMARY_NAMES = {
    1: "SQLITE_ERROR", 2: "SQLITE_INTERNAL", 3: "SQLITE_PERM", 4: "SQLITE_ABORT", 5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED", 7: "SQLITE_NOMEM", 8: "SQLITE_READONLY", 9: "SQLITE_INTERRUPT", 10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT", 12: "SQLITE_NOTFOUND", 13: "SQLITE_FULL", 14: "SQLITE_CANTOPEN", 15: "SQLITE_PROTOCOL",
    17: "SQLITE_SCHEMA", 18: "SQLITE_TOOBIG", 19: "SQLITE_CONSTRAINT", 20: "SQLITE_MISMATCH", 21: "SQLITE_MISUSE",
    22: "SQLITE_NOLFS", 23: "SQLITE_AUTH", 25: "SQLITE_RANGE", 26: "SQLITE_NOTADB",
}


def _process_libraries() -> set[str]:
    """Files of libsqlite3 mapped into this process."""
    try:
        maps = pathlib.Path("/proc/self/maps").read_text()
    except OSError:
        return set()
    return {os.path.realpath(line.split()[-1]) for line in maps.splitlines() if "libsqlite3" in line and "/" in line}


def _load_native() -> Any:
    """The extension, when built and linked to the very library the sqlite3 module uses: two
    copies of SQLite in one process would not see each other's file locks."""
    before = _process_libraries()     # the sqlite3 module (imported above) has loaded its library
    try:
        from fleetlog.collector.store import _sqlite_native
    except ImportError:
        return None
    version, path = _sqlite_native.library()
    if version != sqlite3.sqlite_version or os.path.realpath(path) not in before:
        log.debug("native inserts off: the extension's SQLite %s (%s) is not the sqlite3 module's %s",
                  version, path, sqlite3.sqlite_version)
        return None
    return _sqlite_native


_native = _load_native()
NATIVE = _native is not None     # shown by `make bench`


def _as_sqlite_error(exc: Exception) -> sqlite3.Error:
    message, code = exc.args
    primary = code & 0xFF
    cls = {19: sqlite3.IntegrityError, 11: sqlite3.DatabaseError, 26: sqlite3.DatabaseError}.get(
        primary, sqlite3.OperationalError)
    error = cls(message)
    error.sqlite_errorcode = code
    error.sqlite_errorname = _PRIMARY_NAMES.get(primary, f"SQLITE_{code}")
    return error


def _native_call(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) of the extension, its errors as the sqlite3 errors they stand for."""
    try:
        return fn(*args)
    except _native.Error as exc:
        raise _as_sqlite_error(exc) from None


class PartitionConnection(sqlite3.Connection):
    """A writer's connection to one partition file, with the batch insert path."""

    native: Any = None

    def open_native(self, path: str, synchronous: str, cache_kib: int) -> None:
        if _native is None:
            return
        self.native = _native_call(_native.Connection, path, synchronous, BUSY_TIMEOUT_MS, cache_kib)

    def _run(self, sql: str) -> None:
        if self.native is None:
            self.execute(sql)
        else:
            _native_call(self.native.execute, sql)

    def begin_batch(self) -> None:
        self._run("BEGIN IMMEDIATE")

    def insert_batch(self, rows: list[list[Any]]) -> None:
        """The rows (ROW_COLUMNS order) and their full-text rows, inside the open batch."""
        if self.native is None:
            self.executemany(INSERT_EVENT, rows)
            self.executemany(INSERT_FTS, ((row[_SEQ], row[_MESSAGE]) for row in rows))
            return
        _native_call(self.native.insert, rows, INSERT_EVENT, INSERT_FTS, _SEQ, _MESSAGE)

    def commit_batch(self) -> None:
        self._run("COMMIT")

    def rollback_batch(self) -> None:
        """Best effort: a failed rollback means no transaction was open."""
        try:
            self._run("ROLLBACK")
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self.native is not None:
            self.native.close()
            self.native = None
        super().close()


def wait_all(futures: Sequence[concurrent.futures.Future[Any]]) -> None:
    """Wait for every step, then raise the first failure (none is left running)."""
    concurrent.futures.wait(futures)
    for future in futures:
        exc = future.exception()
        if exc is not None:
            raise exc
