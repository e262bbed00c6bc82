"""The query side of the collector: search, follow and status over a storage reader.

Runs in worker threads (SQLite reads block); the gRPC handlers in service.py only translate.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from collector.filters import FilterSpec
from collector.store import EVENT_COLUMNS
from collector.store.sqlite import SqliteReader, row_to_event
from collector.store.sqlite_query import INDEXED_FILTERS, compile_where, probe_sql, register_functions
from common.event import present


class QueryEngine:
    COMMON_MATCHES = 20_000
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
        where, params = compile_where(spec, walk_time=self._walk_time(spec) if limit else frozenset())
        for rows in self._reader().query(where, params, order=order, limit=limit, batch=page_size):
            yield [present(row_to_event(row)) for row in rows]

    def _walk_time(self, spec: FilterSpec) -> frozenset[str]:
        """For a limited search in time order: which indexed filters to check while walking the
        time index. A filter whose value matches few events (under COMMON_MATCHES, counted on its
        own index) is best served by its index plus a sort; one that matches many events finds its
        first N matches soon on the time walk, so its index is left out of the plan."""
        reader = self._reader()
        common = set()
        for name in INDEXED_FILTERS:
            probe = probe_sql(spec, name, self.COMMON_MATCHES)
            if probe is not None and int(reader.scalar(*probe) or 0) >= self.COMMON_MATCHES:
                common.add(name)
        return frozenset(common)

    def search_by_seq(self, spec: FilterSpec, *, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Events after spec.after_seq in storage order (for follow)."""
        where, params = compile_where(spec)
        reader = self._reader()
        sql = (f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE {where or '1'} ORDER BY seq ASC LIMIT {page_size}")
        rows = reader.conn.execute(sql, params).fetchall()
        if rows:
            yield [present(row_to_event(row)) for row in rows]

    def time_span(self, spec: FilterSpec) -> tuple[int, int] | None:
        """(oldest, newest) time of the matching events, each read from one end of the time order."""
        where, params = compile_where(spec)
        reader = self._reader()
        ends = [reader.scalar(f"SELECT time FROM events WHERE {where or '1'} ORDER BY time {direction} LIMIT 1",
                              params) for direction in ("ASC", "DESC")]
        return None if ends[0] is None else (int(ends[0]), int(ends[1]))

    def histogram(self, spec: FilterSpec, start_us: int, width_us: int, buckets: int) -> list[tuple[int, int, int]]:
        """(bucket index, level, count) of the matching events in [start, start + buckets * width)."""
        where, params = compile_where(spec)
        sql = (f"SELECT (time - ?) / ?, level, count(*) FROM events WHERE time >= ? AND time < ?"
               f"{' AND ' + where if where else ''} GROUP BY 1, 2")
        rows = self._reader().conn.execute(
            sql, [start_us, width_us, start_us, start_us + buckets * width_us, *params]).fetchall()
        return [(int(b), int(level), int(n)) for b, level, n in rows]

    def count(self) -> int:
        return int(self._reader().scalar("SELECT count(*) FROM events") or 0)

    def last_seq(self) -> int:
        return int(self._reader().scalar("SELECT max(seq) FROM events") or 0)
