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
from typing import Any

import psycopg

from collector.filters import FilterSpec
from collector.store import EVENT_COLUMNS, DeleteResult, StoreStatus, pg_retention
from collector.store.pg_dsn import mask_dsn
from collector.store.pg_query import compile_where
from collector.store.postgres import _first_line, connect
from common.errors import StorageError

SELECT_COLUMNS = ", ".join('"user"' if c == "user" else c for c in EVENT_COLUMNS)
_names = itertools.count(1)


class PostgresReader:
    def __init__(self, dsn: str, chain: str = ""):
        self.dsn = dsn
        self.chain = chain        # this collector's chain: the one its row-by-row retention deletes from
        self.conn = connect(dsn)

    def _run(self, fn: Callable[[], Any], what: str) -> Any:
        if self.conn.closed:
            self.conn = connect(self.dsn)
        try:
            return fn()
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                self.conn.close()   # reopened on the next call
            raise StorageError(f"{what} ({mask_dsn(self.dsn)}): {_first_line(exc)}") from None

    def search(self, spec: FilterSpec, *, order: str = "asc", limit: int = 0,
               page_size: int = 1000) -> Iterator[list[tuple]]:
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
                cur.itersize = page_size
                cur.execute(sql, params)
                while rows := cur.fetchmany(page_size):
                    yield rows
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                self.conn.close()
            raise StorageError(f"search failed ({mask_dsn(self.dsn)}): {_first_line(exc)}") from None

    def read_after(self, cursor: dict[str, int], spec: FilterSpec | None = None,
                   limit: int = 1000) -> list[tuple[str, list[tuple]]]:
        """Events after `cursor`, per chain in seq order: [(chain, rows)], at most `limit` rows."""
        where, params = compile_where(spec) if spec is not None else ("TRUE", [])

        def read() -> list[tuple[str, list[tuple]]]:
            out: list[tuple[str, list[tuple]]] = []
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
        return self._run(read, "reading new events failed")

    def event_id(self, chain: str, seq: int) -> str | None:
        row = self._run(lambda: self.conn.execute("SELECT id FROM events WHERE chain = %s AND seq = %s",
                                                  (chain, seq)).fetchone(), "reading an event failed")
        return row[0] if row else None

    def expired(self, tier: str, default_cutoff_us: int | None, namespace_cutoffs: dict[str, int | None],
                after: tuple[int, int], limit: int) -> list[tuple[int, int]]:
        """(time, seq) of this collector's chain's next `limit` events of `tier` older than their
        namespace's cutoff: the row-by-row retention that partition drops cannot do (a namespace
        kept shorter than its day's other events)."""
        cutoffs = [c for c in (default_cutoff_us, *namespace_cutoffs.values()) if c is not None]
        if not cutoffs:
            return []
        never = -(1 << 62)
        case, params = "%s", [default_cutoff_us if default_cutoff_us is not None else never]
        if namespace_cutoffs:
            whens = " ".join("WHEN %s THEN %s" for _ in namespace_cutoffs)
            case = f"CASE namespace {whens} ELSE %s END"
            params = [v for ns, c in namespace_cutoffs.items() for v in (ns, c if c is not None else never)] + params
        sql = (f"SELECT time, seq FROM events WHERE chain = %s AND tier = %s AND time < %s"
               f" AND (time, seq) > (%s, %s) AND time < {case} ORDER BY time, seq LIMIT %s")
        return self._run(lambda: [tuple(r) for r in self.conn.execute(
            sql, [self.chain, tier, max(cutoffs), after[0], after[1], *params, limit]).fetchall()],
            "finding expired events failed")

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
        return int(self._run(lambda: self.conn.execute("SELECT count(*) FROM events").fetchone()[0],
                             "counting events failed"))

    def storage_bytes(self) -> int:
        return int(self._run(lambda: self.conn.execute("SELECT pg_database_size(current_database())")
                             .fetchone()[0], "reading the database size failed"))

    def status(self) -> StoreStatus:
        """Event count (PostgreSQL counts the rows: not for hot loops), heads, database size."""
        def read() -> StoreStatus:
            count = self.conn.execute("SELECT count(*) FROM events").fetchone()[0]
            heads = dict(self.conn.execute("SELECT chain, last_seq FROM chains WHERE last_seq > 0").fetchall())
            size = self.conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            return StoreStatus(event_count=int(count), heads=heads, storage_bytes=int(size))
        return self._run(read, "reading the store's status failed")

    def close(self) -> None:
        self.conn.close()
