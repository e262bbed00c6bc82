"""The query side of the collector: search, follow and status over storage readers.

Runs in worker threads (storage reads block); the gRPC handlers in service.py only translate.
Each thread keeps its own reader (collector.store.EventReader).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from fleetlog.collector.filters import FilterSpec
from fleetlog.collector.store import Cursor, EventReader, StoreStatus, row_to_event
from fleetlog.common.event import present


class QueryEngine:
    def __init__(self, open_reader: Callable[[], EventReader] | str):
        if isinstance(open_reader, str):   # a path: the SQLite store there (tests, tools)
            from fleetlog.collector.store.sqlite import SqliteReader
            path = open_reader
            open_reader = lambda: SqliteReader(path)
        self._open_reader = open_reader
        self._local = threading.local()

    def _reader(self) -> Any:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = self._open_reader()
        return reader

    def search(self, spec: FilterSpec, *, order: str = "asc", limit: int = 0,
               page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Pages of presented events (contract §3 output values)."""
        for rows in self._reader().search(spec, order=order, limit=limit, page_size=page_size):
            yield [present(row_to_event(row)) for row in rows]

    def read_after(self, spec: FilterSpec, cursor: Cursor, *,
                   page_size: int = 1000) -> tuple[list[dict[str, Any]], Cursor]:
        """Matching events after `cursor` (for follow) and the cursor past them."""
        events: list[dict[str, Any]] = []
        cursor = dict(cursor)
        for chain, rows in self._reader().read_after(cursor, spec, page_size):
            events.extend(present(row_to_event(row)) for row in rows)
            cursor[chain] = rows[-1][0]
        return events, cursor

    def event_id(self, chain: str, seq: int) -> str | None:
        return self._reader().event_id(chain, seq)

    def status(self) -> StoreStatus:
        return self._reader().status()

    def time_span(self, spec: FilterSpec) -> tuple[int, int] | None:
        """(oldest, newest) time of the matching events (the console's chart range)."""
        return self._reader().time_span(spec)

    def histogram(self, spec: FilterSpec, start_us: int, width_us: int, buckets: int) -> list[tuple[int, int, int]]:
        """(bucket index, level, count) of the matching events in [start, start + buckets * width)."""
        return self._reader().histogram(spec, start_us, width_us, buckets)

    def count(self) -> int:
        return self.status().event_count

    def last_seq(self) -> int:
        return self.status().last_seq
