"""The read side of the PostgreSQL store: one per thread, over the whole cluster's events.

Searches stream through a server-side cursor inside a read transaction, so an export of millions
of rows holds one page in memory. `read_after` reads each chain in seq order after a cursor
(chain -> seq): a chain's events become visible in seq order, because only its collector writes
it and that collector commits one transaction at a time; so a consumer that keeps a cursor per
chain neither misses nor repeats an event while several collectors commit at once — unlike a
single global sequence, whose numbers commit out of order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import psycopg

from fleetlog.collector.filters import FilterSpec
from fleetlog.collector.store import EVENT_COLUMNS, DeleteResult, Row, StoreStatus, pg_retention, pg_schema
from fleetlog.collector.store.pg_dsn import mask_dsn, scalar
from fleetlog.collector.store.pg_query import compile_where
from fleetlog.collector.store.postgres import T, _first_line, connect
from fleetlog.common.errors import QueryTimeout, StorageError

SELECT_COLUMNS = ", ".join('"user"' if c == "user" else c for c in EVENT_COLUMNS)
_names = itertools.count(1)


class PostgresReader:
    def __init__(self, dsn: str, chain: str = "", query_timeout: float | None = None):
        self.dsn = dsn
        self.chain = chain        # this collector's chain: the one its row-by-row retention deletes from
        # Searches, charts and filtered reads run with statement_timeout set to this (SET LOCAL,
        # in their own transaction; retention's statements are not bounded): [storage] query_timeout.
        self.query_timeout = query_timeout
        self.conn = connect(dsn)

    def _bound(self) -> None:
        """Inside a transaction: its statements end after query_timeout (each FETCH of a cursor
        is one, so the bound is on the work for one page, as with SQLite)."""
        if self.query_timeout:
            self.conn.execute("SELECT set_config('statement_timeout', %s, true)",
                              [f"{int(self.query_timeout * 1000)}ms"])

    def _bounded_run(self, fn: Callable[[], T], what: str) -> T:
        def bounded() -> T:
            with self.conn.transaction():
                self._bound()
                return fn()
        return self._run(bounded, what)

    def _run(self, fn: Callable[[], T], what: str) -> T:
        if self.conn.closed:
            self.conn = connect(self.dsn)
        try:
            return fn()
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout(self.query_timeout or 0) from None
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                self.conn.close()   # reopened on the next call
            raise StorageError(f"{what} ({mask_dsn(self.dsn)}): {_first_line(exc)}") from None

    def search(self, spec: FilterSpec, *, order: str = "asc", limit: int = 0,
               page_size: int = 1000) -> Iterator[list[Row]]:
        """Rows (EVENT_COLUMNS order) matching `spec` in (time, chain, seq) order, in pages."""
        where, params = compile_where(spec)
        direction = "DESC" if order == "desc" else "ASC"
        sql = (f"SELECT {SELECT_COLUMNS} FROM events WHERE {where}"
               f" ORDER BY time {direction}, chain {direction}, seq {direction}")
        if limit:
            sql += f" LIMIT {int(limit)}"
        if self.conn.closed:
            self.conn = connect(self.dsn)
        try:
            with self.conn.transaction(), self.conn.cursor(name=f"fleetlog_search_{next(_names)}") as cur:
                self._bound()
                cur.itersize = page_size
                cur.execute(sql, params)
                while rows := cur.fetchmany(page_size):
                    yield rows
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout(self.query_timeout or 0) from None
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                self.conn.close()
            raise StorageError(f"search failed ({mask_dsn(self.dsn)}): {_first_line(exc)}") from None

    def read_after(self, cursor: dict[str, int], spec: FilterSpec | None = None,
                   limit: int = 1000) -> list[tuple[str, list[Row]]]:
        """Events after `cursor`, per chain in seq order: [(chain, rows)], at most `limit` rows."""
        where, params = compile_where(spec) if spec is not None else ("TRUE", [])

        def read() -> list[tuple[str, list[Row]]]:
            out: list[tuple[str, list[Row]]] = []
            remaining = limit
            for name, head in self.conn.execute("SELECT chain, last_seq FROM chains ORDER BY chain").fetchall():
                after = cursor.get(name, 0)
                if head <= after or remaining <= 0:
                    continue
                # seq <= head: the head was read from the committed chain row, so every event up to
                # it is visible now; nothing past it is looked at before it commits.
                rows = self.conn.execute(
                    f"SELECT {SELECT_COLUMNS} FROM events WHERE chain = %s AND seq > %s AND seq <= %s"
                    f" AND {where} ORDER BY seq LIMIT %s", [name, after, head, *params, remaining]).fetchall()
                if rows:
                    out.append((name, rows))
                    remaining -= len(rows)
            return out
        if spec is None:   # the forwarders' reads: no user filter, not bounded
            return self._run(read, "reading new events failed")
        return self._bounded_run(read, "reading new events failed")

    def time_span(self, spec: FilterSpec) -> tuple[int, int] | None:
        """(oldest, newest) time of the matching events, or None when nothing matches."""
        where, params = compile_where(spec)

        def read() -> tuple[int, int] | None:
            row = self.conn.execute(f"SELECT min(time), max(time) FROM events WHERE {where}", params).fetchone()
            return None if row is None or row[0] is None else (int(row[0]), int(row[1]))
        return self._bounded_run(read, "reading the time span failed")

    def histogram(self, spec: FilterSpec, start_us: int, width_us: int, buckets: int) -> list[tuple[int, int, int]]:
        """(bucket, level, count) of the matching events in [start, start + buckets * width)."""
        where, params = compile_where(spec)
        sql = (f"SELECT (time - %s) / %s, level, count(*) FROM events WHERE time >= %s AND time < %s AND {where}"
               f" GROUP BY 1, 2 ORDER BY 1, 2")

        def read() -> list[tuple[int, int, int]]:
            rows = self.conn.execute(sql, [start_us, width_us, start_us, start_us + buckets * width_us,
                                           *params]).fetchall()
            return [(int(bucket), int(level), int(count)) for bucket, level, count in rows]
        return self._bounded_run(read, "counting events failed")

    def event_id(self, chain: str, seq: int) -> str | None:
        row = self._run(lambda: self.conn.execute("SELECT id FROM events WHERE chain = %s AND seq = %s",
                                                  (chain, seq)).fetchone(), "reading an event failed")
        return row[0] if row else None

    def expired(self, tier: str, default_cutoff_us: int | None, namespace_cutoffs: dict[str, int | None],
                after: tuple[int, int], limit: int) -> list[tuple[int, int]]:
        """(time, seq) of this collector's chain's next `limit` events to delete row by row
        (storage-model §3): in a day partition that stays, the events of each namespace whose
        cutoff is past the whole day. Wholly expired days are dropped instead, and an event in a
        day the cutoff falls into waits for its day (never deleted before it expired)."""
        def cutoff(ns: str) -> int | None:
            return namespace_cutoffs.get(ns, default_cutoff_us)

        def find() -> list[tuple[int, int]]:
            found: list[tuple[int, int]] = []
            for part_tier, start in sorted(pg_schema.existing_partitions(self.conn)):
                end = start + pg_schema.DAY_US
                if part_tier != tier or end <= after[0] or len(found) >= limit:
                    continue
                table = pg_schema.partition_name(part_tier, start)
                present = [ns for (ns,) in self.conn.execute(f"SELECT DISTINCT namespace FROM {table}")]
                gone = [ns for ns in present if (c := cutoff(ns)) is not None and c >= end]
                if not gone or len(gone) == len(present):
                    continue   # nothing expired, or all of it (dropped whole)
                found += [tuple(r) for r in self.conn.execute(
                    f"SELECT time, seq FROM {table} WHERE chain = %s AND namespace = ANY(%s)"
                    " AND (time, seq) > (%s, %s) ORDER BY time, seq LIMIT %s",
                    (self.chain, gone, after[0], after[1], limit - len(found)))]
            return found
        return self._run(find, "finding expired events failed")

    def droppable(self, tier: str, default_cutoff_us: int | None,
                  namespace_cutoffs: dict[str, int | None]) -> list[pg_retention.PgPartition]:
        return self._run(lambda: pg_retention.droppable(self.conn, tier, default_cutoff_us, namespace_cutoffs),
                         "finding expired partitions failed")

    def scan_partition(self, part: pg_retention.PgPartition) -> DeleteResult:
        return self._run(lambda: pg_retention.scan(self.conn, part.name, self.chain), "reading a partition failed")

    def heads(self) -> dict[str, int]:
        return dict(self._run(lambda: self.conn.execute("SELECT chain, last_seq FROM chains").fetchall(),
                              "reading the chain heads failed"))

    def count(self) -> int:
        return int(self._run(lambda: scalar(self.conn, "SELECT count(*) FROM events"),
                             "counting events failed"))

    def storage_bytes(self) -> int:
        return int(self._run(lambda: scalar(self.conn, "SELECT pg_database_size(current_database())"),
                             "reading the database size failed"))

    def status(self) -> StoreStatus:
        """Event count (PostgreSQL counts the rows: not for hot loops), heads, database size."""
        def read() -> StoreStatus:
            count = scalar(self.conn, "SELECT count(*) FROM events")
            heads: dict[str, int] = dict(
                self.conn.execute("SELECT chain, last_seq FROM chains WHERE last_seq > 0").fetchall())
            size = scalar(self.conn, "SELECT pg_database_size(current_database())")
            return StoreStatus(event_count=int(count), heads=heads, storage_bytes=int(size))
        return self._run(read, "reading the store's status failed")

    def close(self) -> None:
        self.conn.close()
