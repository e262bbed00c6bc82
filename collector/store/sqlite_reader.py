"""The read side of the SQLite store (collector.store.EventReader), over time partitions.

Every read takes the committed head and the partition catalogue from the main file in one read
transaction, then reads the partitions it needs, one connection each (never ATTACH: at most 10
databases attach to a connection), bounded by that head (crash rule: rows past it do not exist).
Searches walk partitions in time order: those whose time spans overlap are merged by (time, seq),
disjoint ones are read one after the other, so a limited search stops as soon as it has its rows.
"""

from __future__ import annotations

import collections
import functools
import heapq
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fleetlog.collector.store import EVENT_COLUMNS, Cursor, DeleteResult, Row, StoreStatus, anchors_digest
from fleetlog.collector.store.partitions import LEGACY_TIER, ConnectionPool, Partition, read_catalogue
from fleetlog.collector.store.sqlite_deadline import QueryDeadline
from fleetlog.collector.store.sqlite_query import (
    INDEXED_FILTERS,
    compile_where,
    host_origins_sql,
    probe_sql,
    register_functions,
)
from fleetlog.collector.store.sqlite_util import CHAIN, connect_ro, store_bytes
from fleetlog.common.errors import StorageError

if TYPE_CHECKING:
    from fleetlog.collector.filters import FilterSpec

_SELECT_COLUMNS = ", ".join(EVENT_COLUMNS)
MAIN_CACHE_KIB = 2 * 1024
# Per partition connection; a reader keeps up to OPEN_PARTITIONS of them (memory: contract §5).
PARTITION_CACHE_KIB = 1024
OPEN_PARTITIONS = 32
_NEVER = -(1 << 62)

_TIME = EVENT_COLUMNS.index("time")


def _open_partition(path: str, deadline: QueryDeadline) -> sqlite3.Connection:
    conn = connect_ro(path, PARTITION_CACHE_KIB)
    register_functions(conn)
    deadline.attach(conn)
    return conn


class SqliteReader:
    """One per thread (connections are cheap, and run beside the writer under WAL)."""

    # A filter value matching at least this many events (in a partition) is "common" (_walk_time).
    COMMON_MATCHES = 20_000

    def __init__(self, path: str, query_timeout: float | None = None):
        self.path = path
        # Bounds searches, charts and filtered reads (not retention's scans): [storage] query_timeout.
        self.deadline = QueryDeadline(query_timeout)
        try:
            self.conn = connect_ro(path, MAIN_CACHE_KIB)
            register_functions(self.conn)
            self.deadline.attach(self.conn)
            self.conn.execute("SELECT 1 FROM partitions LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the event store for reading: {exc}") from None
        self.pool = ConnectionPool(path, functools.partial(_open_partition, deadline=self.deadline), OPEN_PARTITIONS)

    # -- snapshot of the main file --------------------------------------------------------------

    def snapshot(self) -> tuple[int, list[Partition]]:
        """(committed head, live partitions) as of one read transaction of the main file."""
        try:
            self.conn.execute("BEGIN")
            try:
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
                parts = read_catalogue(self.conn)
            finally:
                self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: reading the store failed: {exc}") from None
        return int(row[0]) if row else 0, parts

    def _namespaces(self) -> dict[int, dict[str, int]]:
        found: dict[int, dict[str, int]] = {}
        for part, namespace, count in self.conn.execute(
                "SELECT part, namespace, count FROM partition_namespaces WHERE count > 0"):
            found.setdefault(part, {})[namespace] = count
        return found

    def _origin_ids(self, spec: FilterSpec) -> list[int] | None:
        if spec.host is None:
            return None
        sql, params = host_origins_sql(spec.host)
        return [oid for (oid,) in self.conn.execute(sql, params)]

    def _conn(self, part: Partition) -> sqlite3.Connection | None:
        return self.pool.get(part.name, key=(part.id, part.name))

    # -- EventReader -------------------------------------------------------------------------

    def search(self, spec: FilterSpec, *, order: str = "asc", limit: int = 0,
               page_size: int = 1000) -> Iterator[list[Row]]:
        spec = replace(spec, after_seq=0) if spec.after_seq else spec
        head, parts = self.snapshot()
        origin_ids = self._origin_ids(spec)
        parts = [p for p in parts if _overlaps(p, spec)]
        desc = order == "desc"
        page: list[Row] = []
        remaining = limit
        self.deadline.arm()
        try:
            for cluster in _clusters(parts, desc):
                names = [(part.id, part.name) for part in cluster]
                self.pool.hold(names, +1)
                try:
                    streams = []
                    for part in cluster:
                        conn = self._conn(part)
                        if conn is None:
                            continue    # dropped since the snapshot
                        walk = self._walk_time(conn, spec, origin_ids) if limit else frozenset()
                        where, params = compile_where(spec, walk_time=walk, origin_ids=origin_ids)
                        streams.append(_rows(conn, f"({where or '1'}) AND seq <= ?", [*params, head], desc,
                                             remaining))
                    rows = streams[0] if len(streams) == 1 else heapq.merge(
                        *streams, key=lambda r: (r[2], r[0]), reverse=desc)
                    for row in rows:
                        page.append(row)
                        if len(page) >= page_size:
                            self.deadline.disarm()   # the consumer's time with a page is not bounded
                            yield page
                            self.deadline.arm()
                            page = []
                        if limit:
                            remaining -= 1
                            if remaining == 0:
                                break
                finally:
                    self.pool.hold(names, -1)
                if limit and remaining == 0:
                    break
        except sqlite3.Error as exc:
            raise self.deadline.error(exc, f"{self.path}: search failed") from None
        finally:
            self.deadline.disarm()
            self.pool.trim()
        if page:
            yield page

    def _walk_time(self, conn: sqlite3.Connection, spec: FilterSpec, origin_ids: list[int] | None) -> frozenset[str]:
        """For a limited search in time order: which indexed filters to check while walking the
        time index. A filter whose value matches few events (under COMMON_MATCHES, counted on its
        own index) is best served by its index plus a sort; one that matches many events finds its
        first N matches soon on the time walk, so its index is left out of the plan."""
        common = set()
        for name in INDEXED_FILTERS:
            probe = probe_sql(spec, name, self.COMMON_MATCHES, origin_ids)
            if probe is not None:
                row = conn.execute(*probe).fetchone()
                if row and int(row[0] or 0) >= self.COMMON_MATCHES:
                    common.add(name)
        return frozenset(common)

    def read_after(self, cursor: Cursor, spec: FilterSpec | None = None,
                   limit: int = 1000) -> list[tuple[str, list[Row]]]:
        after = cursor.get(CHAIN, 0)
        head, parts = self.snapshot()
        if head <= after:
            return []
        where = "1"
        params: list[Any] = []
        if spec is not None:
            where, params = compile_where(replace(spec, after_seq=0), origin_ids=self._origin_ids(spec))
        streams = []
        if spec is not None:
            self.deadline.arm()   # a follower's filters; the forwarders' unfiltered reads are not bounded
        try:
            for part in parts:
                if part.max_seq <= after:
                    continue
                conn = self._conn(part)
                if conn is None:
                    continue
                streams.append(conn.execute(
                    f"SELECT {_SELECT_COLUMNS} FROM events WHERE ({where or '1'}) AND seq > ? AND seq <= ?"
                    " ORDER BY seq LIMIT ?", (*params, after, head, int(limit))).fetchall())
        except sqlite3.Error as exc:
            raise self.deadline.error(exc, f"{self.path}: reading new events failed") from None
        finally:
            self.deadline.disarm()
            self.pool.trim()
        rows = list(heapq.merge(*streams, key=lambda r: r[0]))[:limit] if len(streams) > 1 else \
            (streams[0] if streams else [])
        return [(CHAIN, rows)] if rows else []

    def event_id(self, chain: str, seq: int) -> str | None:
        head, parts = self.snapshot()
        for part in parts:
            if part.min_seq <= seq <= part.max_seq and seq <= head:
                conn = self._conn(part)
                row = conn.execute("SELECT id FROM events WHERE seq = ?", (seq,)).fetchone() if conn else None
                if row:
                    return str(row[0])
        return None

    def heads(self) -> Cursor:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: reading the store failed: {exc}") from None
        head = int(row[0]) if row else 0
        return {CHAIN: head} if head else {}

    def status(self) -> StoreStatus:
        head, parts = self.snapshot()
        return StoreStatus(event_count=sum(p.count for p in parts), heads={CHAIN: head} if head else {},
                           storage_bytes=store_bytes(self.path))

    # -- retention -------------------------------------------------------------------------------

    def expired(self, tier: str, default_cutoff_us: int | None, namespace_cutoffs: dict[str, int | None],
                after: tuple[int, int], limit: int) -> list[tuple[int, int]]:
        """(time, seq) of up to `limit` events of `tier` to delete row by row, after `after` in
        (time, seq) order (storage-model §3): in a partition that stays, the events of each
        namespace whose cutoff is past the whole partition; in the legacy partition, every event
        older than its namespace's cutoff. Whole expired partitions are dropped instead."""
        def cutoff(ns: str) -> int | None:
            return namespace_cutoffs.get(ns, default_cutoff_us)

        _, parts = self.snapshot()
        namespaces = self._namespaces()
        found: list[tuple[int, int]] = []
        try:
            for part in parts:
                conn = None
                if part.tier == LEGACY_TIER:
                    where, params = _legacy_expired(tier, default_cutoff_us, namespace_cutoffs)
                    if where is None:
                        continue
                elif part.tier == tier:
                    present = list(namespaces.get(part.id, {}))
                    gone = [ns for ns in present if (c := cutoff(ns)) is not None and c >= part.period_end]
                    if not gone or len(gone) == len(present):
                        continue   # nothing expired, or all of it (dropped whole)
                    where = f"namespace IN ({','.join('?' * len(gone))})"
                    params = gone
                else:
                    continue
                conn = self._conn(part)
                if conn is None:
                    continue
                found += conn.execute(
                    f"SELECT time, seq FROM events WHERE tier = ? AND {where} AND (time, seq) > (?, ?)"
                    " ORDER BY time, seq LIMIT ?", (tier, *params, after[0], after[1], limit)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: finding expired events failed: {exc}") from None
        finally:
            self.pool.trim()
        return sorted(found)[:limit]

    def droppable(self, tier: str, default_cutoff_us: int | None,
                  namespace_cutoffs: dict[str, int | None]) -> list[Partition]:
        """Partitions of `tier` whose every event is expired: the period is past the cutoff of
        every namespace it holds (an indefinite retention keeps the partition)."""
        _, parts = self.snapshot()
        namespaces = self._namespaces()
        found = []
        for part in parts:
            if part.tier != tier:
                continue
            cutoffs = [namespace_cutoffs.get(ns, default_cutoff_us) for ns in namespaces.get(part.id, {})]
            if all(c is not None and part.period_end <= c for c in cutoffs or [default_cutoff_us]):
                found.append(part)
        return found

    def scan_partition(self, part: Partition) -> DeleteResult:
        """What dropping `part` (as of its max_seq then) removes: count, time span, namespaces,
        seq ranges and the anchors (link of every range end). One pass over the partition's
        rowids (the runs of consecutive seqs, by window function), the rest from indexes and the
        catalogue; a run of SQLite with the GIL released, beside the writer."""
        conn = self._conn(part)
        result = DeleteResult()
        if conn is None:
            return result
        try:
            runs = conn.execute(
                "SELECT min(seq), max(seq) FROM (SELECT seq, seq - row_number() OVER (ORDER BY seq) AS run"
                " FROM events WHERE seq <= ?) GROUP BY run ORDER BY 1", (part.max_seq,)).fetchall()
            if not runs:
                return result
            # A row that arrived after the catalogue was read has a higher seq: the drop then
            # finds max_seq changed and keeps the partition, so min/max over all rows are right.
            oldest, newest = conn.execute("SELECT min(time), max(time) FROM events").fetchone()
            ends = [end for _, end in runs]
            links: dict[int, bytes] = {}
            for start in range(0, len(ends), 500):
                chunk = ends[start:start + 500]
                links.update(conn.execute(f"SELECT seq, hash FROM events WHERE seq IN ({','.join('?' * len(chunk))})",
                                          chunk).fetchall())
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: reading partition {part.name} failed: {exc}") from None
        result.count = sum(end - start + 1 for start, end in runs)
        result.oldest_us, result.newest_us = oldest, newest
        result.namespaces = dict(self._namespaces().get(part.id, {}))
        result.ranges = [(start, end) for start, end in runs]
        result.anchors = [(end, bytes(links[end])) for end in ends]
        result.anchors_sha256 = anchors_digest(result.anchors)
        return result

    def time_span(self, spec: FilterSpec) -> tuple[int, int] | None:
        """(oldest, newest) time of the matching events, or None when nothing matches."""
        ends = [next(self.search(spec, order=order, limit=1, page_size=1), None) for order in ("asc", "desc")]
        if ends[0] is None or ends[1] is None:
            return None
        return int(ends[0][0][_TIME]), int(ends[1][0][_TIME])

    def histogram(self, spec: FilterSpec, start_us: int, width_us: int, buckets: int) -> list[tuple[int, int, int]]:
        """(bucket, level, count) of the matching events in [start, start + buckets * width),
        summed over the partitions that overlap it."""
        end_us = start_us + buckets * width_us
        head, parts = self.snapshot()
        origin_ids = self._origin_ids(spec)
        where, params = compile_where(spec, origin_ids=origin_ids)
        sql = (f"SELECT (time - ?) / ?, level, count(*) FROM events WHERE time >= ? AND time < ? AND seq <= ?"
               f"{' AND ' + where if where else ''} GROUP BY 1, 2")
        counts: collections.Counter[tuple[int, int]] = collections.Counter()
        self.deadline.arm()
        try:
            for part in parts:
                if part.max_time < start_us or part.min_time >= end_us or (conn := self._conn(part)) is None:
                    continue
                for bucket, level, count in conn.execute(sql, [start_us, width_us, start_us, end_us, head, *params]):
                    counts[(int(bucket), int(level))] += count
        except sqlite3.Error as exc:
            raise self.deadline.error(exc, f"{self.path}: counting events failed") from None
        finally:
            self.deadline.disarm()
            self.pool.trim()
        return [(bucket, level, count) for (bucket, level), count in sorted(counts.items())]

    # -- SQL-level access (tests and tools) --------------------------------------------------------

    def partition_connections(self) -> list[sqlite3.Connection]:
        _, parts = self.snapshot()
        return [conn for part in parts if (conn := self._conn(part)) is not None]

    def query(self, where: str, params: Iterable[Any], order: str = "asc", limit: int = 0,
              batch: int = 1000) -> Iterator[list[Row]]:
        """Rows (EVENT_COLUMNS order) matching a WHERE clause over every partition, in (time, seq)
        order, in lists of `batch`."""
        head, parts = self.snapshot()
        desc = order == "desc"
        streams = [_rows(conn, f"({where or '1'}) AND seq <= ?", [*params, head], desc, limit)
                   for part in parts if (conn := self._conn(part)) is not None]
        page: list[Row] = []
        for n, row in enumerate(heapq.merge(*streams, key=lambda r: (r[2], r[0]), reverse=desc), 1):
            page.append(row)
            if len(page) >= batch:
                yield page
                page = []
            if limit and n >= limit:
                break
        if page:
            yield page

    def close(self) -> None:
        self.pool.close()
        self.conn.close()


def _rows(conn: sqlite3.Connection, where: str, params: list[Any], desc: bool, limit: int) -> Iterator[Row]:
    direction = "DESC" if desc else "ASC"
    sql = f"SELECT {_SELECT_COLUMNS} FROM events WHERE {where} ORDER BY time {direction}, seq {direction}"
    if limit:
        sql += f" LIMIT {int(limit)}"
    cursor = conn.execute(sql, params)
    while rows := cursor.fetchmany(500):
        yield from rows


def _overlaps(part: Partition, spec: FilterSpec) -> bool:
    low, high = spec.since_us, spec.until_us
    if spec.date_range is not None:
        low = spec.date_range[0] if low is None else max(low, spec.date_range[0])
        high = spec.date_range[1] if high is None else min(high, spec.date_range[1])
    return not ((low is not None and part.max_time < low) or (high is not None and part.min_time > high))


def _clusters(parts: list[Partition], desc: bool) -> Iterator[list[Partition]]:
    """Partitions in time order, grouped where their time spans overlap (each group is merged;
    groups follow each other in time)."""
    if desc:
        ordered = sorted(parts, key=lambda p: (-p.max_time, p.id))
    else:
        ordered = sorted(parts, key=lambda p: (p.min_time, p.id))
    group: list[Partition] = []
    edge = 0
    for part in ordered:
        if group and (part.max_time >= edge if desc else part.min_time <= edge):
            group.append(part)
            edge = min(edge, part.min_time) if desc else max(edge, part.max_time)
            continue
        if group:
            yield group
        group = [part]
        edge = part.min_time if desc else part.max_time
    if group:
        yield group


def _legacy_expired(tier: str, default_cutoff_us: int | None,
                    namespace_cutoffs: dict[str, int | None]) -> tuple[str | None, list[Any]]:
    """The single-file store's rule: each event older than its namespace's cutoff."""
    cutoffs = [c for c in (default_cutoff_us, *namespace_cutoffs.values()) if c is not None]
    if not cutoffs:
        return None, []
    case = "?"
    params: list[Any] = [default_cutoff_us if default_cutoff_us is not None else _NEVER]
    if namespace_cutoffs:
        whens = " ".join("WHEN ? THEN ?" for _ in namespace_cutoffs)
        case = f"CASE namespace {whens} ELSE ? END"
        params = [v for ns, c in namespace_cutoffs.items() for v in (ns, c if c is not None else _NEVER)] + params
    return f"time < ? AND time < {case}", [max(cutoffs), *params]
