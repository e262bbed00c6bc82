"""The query side of the collector: search, follow and status over a storage reader.

Runs in worker threads (SQLite reads block); the gRPC handlers in service.py only translate.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

from collector.filters import FilterSpec
from collector.store import EVENT_COLUMNS
from collector.store.sqlite import SqliteReader, row_to_event
from collector.store.sqlite_query import compile_where, register_functions
from common.event import present


class QueryEngine:
    def __init__(self, db_path: str):
        self.db_path = db_path
        self._local = threading.local()

    def _reader(self) -> SqliteReader:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = SqliteReader(self.db_path)
            register_functions(reader.conn)
            self._local.reader = reader
        return reader

    def search(self, spec: FilterSpec, *, order: str = "asc", limit: int = 0,
               page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Pages of presented events (SPEC §3 output values)."""
        where, params = compile_where(spec, time_walk_for_host=limit > 0)
        for rows in self._reader().query(where, params, order=order, limit=limit, batch=page_size):
            yield [present(row_to_event(row)) for row in rows]

    def search_by_seq(self, spec: FilterSpec, *, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Events after spec.after_seq in storage order (for follow)."""
        where, params = compile_where(spec)
        reader = self._reader()
        sql = (f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE {where or '1'} ORDER BY seq ASC LIMIT {page_size}")
        rows = reader.conn.execute(sql, params).fetchall()
        if rows:
            yield [present(row_to_event(row)) for row in rows]

    def count(self) -> int:
        return int(self._reader().scalar("SELECT count(*) FROM events") or 0)

    def last_seq(self) -> int:
        return int(self._reader().scalar("SELECT max(seq) FROM events") or 0)
