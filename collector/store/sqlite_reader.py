"""The read side of the SQLite store (collector.store.EventReader), over the blocks of time
partitions (docs/storage-model.md §6).

Every read takes the committed head and the partition catalogue from the main file in one read
transaction, then reads the partitions it needs, one connection each (never ATTACH: at most 10
databases attach to a connection), each inside one read transaction (sqlite_block_read.py),
bounded by that head (crash rule: rows past it do not exist). Host filters resolve to origins on
the main file. Blocks are picked on their skip columns, summary and bloom (sqlite_block_scan.py),
decoded only when the order of the read reaches them (sqlite_block_merge.py), and their rows
matched exactly (row_match.py): a search for the newest 100 decodes the newest few blocks.
"""

from __future__ import annotations

import bisect
import collections
import functools
import operator
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from fleetlog.collector.filters import FilterSpec
from fleetlog.collector.store import (
    EVENT_COLUMNS,
    ROW_COLUMNS,
    Cursor,
    DeleteResult,
    Row,
    StoreStatus,
    anchors_digest,
)
from fleetlog.collector.store.block_columns import BlockColumns
from fleetlog.collector.store.blocks import HASH, ID, LEVEL, NAMESPACE, SEQ, TIME, Run, fill_ids
from fleetlog.collector.store.partitions import (
    LEGACY_TIER,
    ConnectionPool,
    Partition,
    partition_path,
    read_catalogue,
)
from fleetlog.collector.store.row_match import needs_ids, row_predicate
from fleetlog.collector.store.sqlite_block_merge import BEFORE, Source, merged
from fleetlog.collector.store.sqlite_block_read import PartitionSnapshot
from fleetlog.collector.store.sqlite_block_scan import (
    BlockSelection,
    Sieve,
    event_sieve,
    select_blocks,
    time_bounds,
)
from fleetlog.collector.store.sqlite_blocks import BlockHeader, headers
from fleetlog.collector.store.sqlite_deadline import QueryDeadline
from fleetlog.collector.store.sqlite_hosts import host_origins_sql
from fleetlog.collector.store.sqlite_util import CHAIN, connect_ro, store_bytes
from fleetlog.common import chain
from fleetlog.common.errors import StorageError

MAIN_CACHE_KIB = 2 * 1024
# Per partition connection; a reader keeps up to OPEN_PARTITIONS of them (memory: contract §5).
PARTITION_CACHE_KIB = 1024
OPEN_PARTITIONS = 32
# Rows of a block are matched in slices of this many, with a look at the deadline before each.
MATCH_SLICE = 256

_event = operator.itemgetter(*(ROW_COLUMNS.index(name) for name in EVENT_COLUMNS))
_TIME = EVENT_COLUMNS.index("time")
_CHAIN_COLUMNS = tuple(ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS)
RowTest = Callable[[list[Any]], bool]


def _asc(row: list[Any]) -> tuple[int, ...]:
    return row[TIME], row[SEQ]


def _desc(row: list[Any]) -> tuple[int, ...]:
    return -row[TIME], -row[SEQ]


def _by_seq(row: list[Any]) -> tuple[int, ...]:
    return (row[SEQ],)


KeysOf = Callable[[BlockColumns, Sequence[int]], list[tuple[int, ...]]]


def _asc_keys(columns: BlockColumns, chosen: Sequence[int]) -> list[tuple[int, ...]]:
    return list(zip(columns.values("time", chosen), columns.values("seq", chosen)))


def _desc_keys(columns: BlockColumns, chosen: Sequence[int]) -> list[tuple[int, ...]]:
    return [(-t, -s) for t, s in zip(columns.values("time", chosen), columns.values("seq", chosen))]


def _seq_keys(columns: BlockColumns, chosen: Sequence[int]) -> list[tuple[int, ...]]:
    return [(seq,) for seq in columns.values("seq", chosen)]


class _OpenedPartition:
    """A partition a read has opened (sqlite_block_merge.OpenedPartition): its candidate blocks
    and their rows that `keep` accepts, matched slice by slice under the deadline."""

    def __init__(self, snapshot: PartitionSnapshot, blocks: list[BlockHeader], keep: RowTest,
                 check: Callable[[], None], before_matching: Callable[[list[list[Any]]], None] | None = None,
                 sieve: Sieve | None = None, order: KeysOf | None = None):
        self.snapshot = snapshot
        self.blocks = blocks
        self.keep = keep
        self.check = check
        self.before_matching = before_matching
        self.sieve = sieve
        self.order = order

    def all_matching(self, header: BlockHeader) -> list[list[Any]]:
        """Every matching row of the block, seq order."""
        return self._matching(self.snapshot.rows(header, self.sieve))

    def matching(self, header: BlockHeader, after: tuple[int, ...] | None, keep: int) -> tuple[list[list[Any]], bool]:
        """The block's first `keep` matching rows in `order` after key `after`, and whether more
        follow: the events the sieve lets through are ordered by their time and seq columns, and
        rows are built for them a slice at a time until `keep` match."""
        assert self.order is not None
        columns = self.snapshot.columns(header)
        among = None if self.sieve is None else self.sieve(columns, header)
        chosen = range(columns.count) if among is None else among
        ordered = sorted(zip(self.order(columns, chosen), chosen))
        if after is not None:
            ordered = ordered[bisect.bisect_right(ordered, after, key=operator.itemgetter(0)):]
        found: list[list[Any]] = []
        taken = 0
        while taken < len(ordered) and len(found) < keep:
            size = max(keep - len(found), MATCH_SLICE)
            found += self._matching(columns.rows([i for _, i in ordered[taken:taken + size]]))
            taken += size
        return found[:keep], taken < len(ordered) or len(found) > keep

    def _matching(self, rows: list[list[Any]]) -> list[list[Any]]:
        if self.before_matching is not None:
            self.before_matching(rows)
        found: list[list[Any]] = []
        for start in range(0, len(rows), MATCH_SLICE):
            self.check()
            found += filter(self.keep, rows[start:start + MATCH_SLICE])
        return found

    def counted(self, header: BlockHeader, head: int, start_us: int, width_us: int) -> collections.Counter[tuple[int, int]]:
        """(bucket, level) -> events of the block the sieve lets through, up to seq `head`: for a
        filter the sieve decides alone (time, level)."""
        columns = self.snapshot.columns(header)
        among = self.sieve(columns, header) if self.sieve is not None else None
        chosen: Iterable[int] = range(columns.count) if among is None else among
        if header.max_seq > head:
            seqs = columns.column("seq")
            chosen = [i for i in chosen if seqs[i] <= head]
        levels = columns.column("level")
        bucket = (header.min_time - start_us) // width_us
        if among is None and header.max_seq <= head and bucket == (header.max_time - start_us) // width_us:
            # The whole block in one bucket (the usual case): count its levels at C speed.
            return collections.Counter({(bucket, level): n for level, n in collections.Counter(levels).items()})
        times = columns.column("time")
        return collections.Counter(((times[i] - start_us) // width_us, levels[i]) for i in chosen)

    def close(self) -> None:
        self.snapshot.close()


class SqliteReader:
    """One per thread (connections are cheap, and run beside the writer under WAL)."""

    def __init__(self, path: str, query_timeout: float | None = None):
        self.path = path
        # Bounds searches, charts and filtered reads (not retention's scans): [storage] query_timeout.
        self.deadline = QueryDeadline(query_timeout)
        try:
            self.conn = connect_ro(path, MAIN_CACHE_KIB)
            self.deadline.attach(self.conn)
            self.conn.execute("SELECT 1 FROM partitions LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the event store for reading: {exc}") from None
        self.pool = ConnectionPool(path, self._connect, OPEN_PARTITIONS)
        self._source_keys: dict[int, tuple[str, str]] = {}

    def _connect(self, path: str) -> sqlite3.Connection:
        conn = connect_ro(path, PARTITION_CACHE_KIB)
        self.deadline.attach(conn)
        return conn

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

    def _host_origins(self, spec: FilterSpec | None) -> dict[int, str] | None:
        """origin id -> host of the origins a host filter (names or addresses) matches; None
        without a host filter."""
        if spec is None or spec.host is None:
            return None
        sql, params = host_origins_sql(spec.host)
        return dict(self.conn.execute(f"SELECT id, host FROM origins WHERE id IN ({sql})", params).fetchall())

    def _fill_ids(self, rows: list[list[Any]]) -> None:
        """Event ids of rows that do not keep theirs, from their origins' (host, source_key)."""
        try:
            fill_ids(rows, self._source_keys)
        except KeyError:    # an origin newer than this reader's copy
            self._source_keys = {oid: (host, key) for oid, host, key in
                                 self.conn.execute("SELECT id, host, source_key FROM origins")}
            fill_ids(rows, self._source_keys)

    def _keep(self, spec: FilterSpec | None, origins: dict[int, str] | None, low_seq: int, head: int) -> RowTest:
        """Rows with low_seq < seq <= head that match `spec`."""
        if spec is None:
            return lambda row: low_seq < row[SEQ] <= head
        predicate = row_predicate(spec, None if origins is None else list(origins))
        return lambda row: low_seq < row[SEQ] <= head and predicate(row)

    def _selection(self, spec: FilterSpec, origins: dict[int, str] | None) -> BlockSelection:
        return select_blocks(spec, None if origins is None else sorted(set(origins.values())))

    def _open(self, part: Partition, own: bool, select: Callable[[sqlite3.Connection], list[BlockHeader]],
              keep: RowTest, with_ids: bool = False, sieve: Sieve | None = None,
              order: KeysOf | None = None) -> _OpenedPartition | None:
        """`part` in a read transaction, with the blocks `select` lists; None when its file is
        gone (dropped since the snapshot). `own`: a connection of its own (a search, which may
        pause between pages while this reader serves other reads), else the pooled one."""
        if own:
            path = partition_path(self.path, part.name)
            if not path.exists():
                return None
            conn: sqlite3.Connection | None = self._connect(str(path))
        else:
            conn = self.pool.get(part.name, key=(part.id, part.name))
        if conn is None:
            return None
        snapshot = PartitionSnapshot(conn, part.name, own=own)
        try:
            blocks = select(conn)
        except BaseException:
            snapshot.close()
            raise
        return _OpenedPartition(snapshot, blocks, keep, self.deadline.check, self._fill_ids if with_ids else None,
                                sieve, order)

    # -- EventReader -------------------------------------------------------------------------

    def search(self, spec: FilterSpec, *, order: str = "asc", limit: int = 0,
               page_size: int = 1000) -> Iterator[list[Row]]:
        spec = replace(spec, after_seq=0) if spec.after_seq else spec
        head, parts = self.snapshot()
        origins = self._host_origins(spec)
        selection = self._selection(spec, origins)
        keep = self._keep(spec, origins, 0, head)
        desc = order == "desc"
        low, high = time_bounds(spec)
        sieve = event_sieve(spec)
        sources = [] if selection.nothing else [
            Source((-part.max_time, BEFORE) if desc else (part.min_time, BEFORE),
                   functools.partial(self._open, part, True, functools.partial(selection.headers, head=head),
                                     keep, needs_ids(spec), sieve, _desc_keys if desc else _asc_keys))
            for part in parts
            if not ((low is not None and part.max_time < low) or (high is not None and part.min_time > high))]
        rows = merged(sources, row_key=_desc if desc else _asc,
                      block_bound=(lambda h: (-h.max_time, BEFORE)) if desc else (lambda h: (h.min_time, BEFORE)),
                      limit=limit, check=self.deadline.check, finish=self._fill_ids)
        page: list[Row] = []
        self.deadline.arm()
        try:
            for row in rows:
                page.append(_event(row))
                if len(page) >= page_size:
                    self.deadline.disarm()   # the consumer's time with a page is not bounded
                    yield page
                    self.deadline.arm()
                    page = []
        except sqlite3.Error as exc:
            raise self.deadline.error(exc, f"{self.path}: search failed") from None
        finally:
            self.deadline.disarm()
            rows.close()
        if page:
            yield page

    def read_after(self, cursor: Cursor, spec: FilterSpec | None = None,
                   limit: int = 1000) -> list[tuple[str, list[Row]]]:
        after = cursor.get(CHAIN, 0)
        head, parts = self.snapshot()
        if head <= after:
            return []
        if spec is not None:
            spec = replace(spec, after_seq=0)
        origins = self._host_origins(spec)
        selection = self._selection(spec, origins) if spec is not None else None
        keep = self._keep(spec, origins, after, head)

        def select(conn: sqlite3.Connection) -> list[BlockHeader]:
            if selection is not None:
                return selection.headers(conn, head, " AND max_seq > ?", [after])
            return _headers(conn, "min_seq <= ? AND max_seq > ?", [head, after])

        sieve = event_sieve(spec, (after, head), limit)
        sources = [Source((max(part.min_seq, after + 1),),
                          functools.partial(self._open, part, False, select, keep, spec is not None and needs_ids(spec),
                                            sieve, _seq_keys))
                   for part in parts if part.max_seq > after]
        if spec is not None:
            self.deadline.arm()   # a follower's filters; the forwarders' unfiltered reads are not bounded
        try:
            rows = [_event(row) for row in merged(sources, row_key=_by_seq, block_bound=lambda h: (h.min_seq,),
                                                  limit=limit, check=self.deadline.check, finish=self._fill_ids)]
        except sqlite3.Error as exc:
            raise self.deadline.error(exc, f"{self.path}: reading new events failed") from None
        finally:
            self.deadline.disarm()
            self.pool.trim()
        return [(CHAIN, rows)] if rows else []

    def event_id(self, chain: str, seq: int) -> str | None:
        head, parts = self.snapshot()
        if seq > head:
            return None
        for part in parts:
            if not part.min_seq <= seq <= part.max_seq:
                continue
            opened = self._open(part, False, functools.partial(_headers, where="min_seq <= ? AND max_seq >= ?",
                                                               params=[seq, seq]),
                                lambda row: row[SEQ] == seq, sieve=event_sieve(None, (seq - 1, seq)))
            if opened is None:
                continue
            try:
                for header in opened.blocks:
                    found = opened.all_matching(header)
                    if found:
                        self._fill_ids(found)
                        return str(found[0][ID])
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: reading event {seq} failed: {exc}") from None
            finally:
                opened.close()
                self.pool.trim()
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

        head, parts = self.snapshot()
        namespaces = self._namespaces()
        sources = []
        for part in parts:
            keep: RowTest
            if part.tier == LEGACY_TIER:
                keep = functools.partial(_legacy_expired, tier=tier, cutoff=cutoff)
                blocks_of = functools.partial(_expiring_blocks, cutoff=cutoff, after=after, head=head)
            elif part.tier == tier:
                present = list(namespaces.get(part.id, {}))
                gone = {ns for ns in present if (c := cutoff(ns)) is not None and c >= part.period_end}
                if not gone or len(gone) == len(present):
                    continue   # nothing expired, or all of it (dropped whole)
                keep = functools.partial(_of_namespaces, tier=tier, namespaces=gone)
                blocks_of = functools.partial(
                    _headers, where=f"min_seq <= ? AND max_time >= ? AND namespace IN ({','.join('?' * len(gone))})",
                    params=[head, after[0], *sorted(gone)])
            else:
                continue
            sources.append(Source((part.min_time, BEFORE), functools.partial(
                self._open, part, False, blocks_of, functools.partial(_after, after=after, head=head, keep=keep),
                order=_asc_keys)))
        try:
            return [(row[TIME], row[SEQ]) for row in merged(
                sources, row_key=_asc, block_bound=lambda h: (h.min_time, BEFORE), limit=limit)]
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: finding expired events failed: {exc}") from None
        finally:
            self.pool.trim()

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
        seq ranges and the anchors (the link of every range end). From the blocks' skip columns
        and the runs in their payloads' headers: a range of the partition ends where a run of one
        of its blocks ends, and a block keeps the whole link there. Read beside the writer."""
        result = DeleteResult()
        opened = self._open(part, False, functools.partial(_headers, where="1", params=[]), lambda row: True)
        if opened is None:
            return result
        try:
            # A block that arrived after the catalogue was read holds higher seqs: the drop then
            # finds max_seq changed and keeps the partition, so min/max over all blocks are right.
            times = [(h.min_time, h.max_time) for h in opened.blocks]
            runs: list[tuple[Run, BlockHeader]] = [
                (run, header) for header in opened.blocks if header.min_seq <= part.max_seq
                for run in opened.snapshot.runs(header) if run.start <= part.max_seq]
            runs.sort(key=lambda item: item[0].start)
            ranges: list[tuple[int, int]] = []
            ends: list[tuple[Run, BlockHeader]] = []
            for run, header in runs:
                end = min(run.end, part.max_seq)
                if ranges and ranges[-1][1] == run.start - 1:
                    ranges[-1] = (ranges[-1][0], end)
                    ends[-1] = (run, header)
                else:
                    ranges.append((run.start, end))
                    ends.append((run, header))
            anchors = [(end, self._link_at(opened, run, header, end)) for (_, end), (run, header) in zip(ranges, ends)]
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: reading partition {part.name} failed: {exc}") from None
        finally:
            opened.close()
            self.pool.trim()
        if not ranges:
            return result
        result.count = sum(end - start + 1 for start, end in ranges)
        result.oldest_us, result.newest_us = min(t[0] for t in times), max(t[1] for t in times)
        result.namespaces = dict(self._namespaces().get(part.id, {}))
        result.ranges = ranges
        result.anchors = anchors
        result.anchors_sha256 = anchors_digest(anchors)
        return result

    def _link_at(self, opened: _OpenedPartition, run: Run, header: BlockHeader, seq: int) -> bytes:
        """The whole link of `seq` in `run`: kept at the run's end, recomputed from the run's
        start inside it (a run that grew past the catalogue's max_seq: a drop that then keeps
        the partition)."""
        if seq == run.end:
            return run.link_end
        rows = [row for row in opened.snapshot.rows(header) if run.start <= row[SEQ] <= seq]
        self._fill_ids(rows)
        return chain.link_rows(run.link_before, rows, _CHAIN_COLUMNS, HASH)

    # -- charts ------------------------------------------------------------------------------

    def time_span(self, spec: FilterSpec) -> tuple[int, int] | None:
        """(oldest, newest) time of the matching events, or None when nothing matches."""
        ends = [next(self.search(spec, order=order, limit=1, page_size=1), None) for order in ("asc", "desc")]
        if ends[0] is None or ends[1] is None:
            return None
        return int(ends[0][0][_TIME]), int(ends[1][0][_TIME])

    def histogram(self, spec: FilterSpec, start_us: int, width_us: int, buckets: int) -> list[tuple[int, int, int]]:
        """(bucket, level, count) of the matching events in [start, start + buckets * width),
        over the blocks that overlap it."""
        end_us = start_us + buckets * width_us
        head, parts = self.snapshot()
        origins = self._host_origins(spec)
        selection = self._selection(spec, origins)
        predicate = self._keep(spec, origins, 0, head)

        def keep(row: list[Any]) -> bool:
            return start_us <= row[TIME] < end_us and predicate(row)

        def select(conn: sqlite3.Connection) -> list[BlockHeader]:
            return selection.headers(conn, head, " AND max_time >= ? AND min_time < ?", [start_us, end_us])
        sieve = event_sieve(replace(spec, since_us=max(start_us, spec.since_us or start_us),
                                    until_us=min(end_us - 1, spec.until_us if spec.until_us is not None else end_us)))

        # Time, level and namespace alone (the chart of the console's first page): counted from two
        # columns of each block, no row built.
        by_columns = replace(spec, since_us=None, until_us=None, max_level=None, levels=(), namespace=None,
                             allowed_namespaces=None) == FilterSpec(extra=spec.extra)
        counts: collections.Counter[tuple[int, int]] = collections.Counter()
        self.deadline.arm()
        try:
            for part in parts:
                if part.max_time < start_us or part.min_time >= end_us or selection.nothing:
                    continue
                opened = self._open(part, False, select, keep, needs_ids(spec), sieve)
                if opened is None:
                    continue
                try:
                    for header in opened.blocks:
                        self.deadline.check()
                        if by_columns:
                            counts.update(opened.counted(header, head, start_us, width_us))
                        else:
                            counts.update(((row[TIME] - start_us) // width_us, row[LEVEL])
                                          for row in opened.all_matching(header))
                finally:
                    opened.close()
        except sqlite3.Error as exc:
            raise self.deadline.error(exc, f"{self.path}: counting events failed") from None
        finally:
            self.deadline.disarm()
            self.pool.trim()
        return [(bucket, level, count) for (bucket, level), count in sorted(counts.items())]

    def close(self) -> None:
        self.pool.close()
        self.conn.close()


_TIER = ROW_COLUMNS.index("tier")


def _headers(conn: sqlite3.Connection, where: str, params: list[Any]) -> list[BlockHeader]:
    return headers(conn, where, params)


def _legacy_expired(row: list[Any], tier: str, cutoff: Callable[[str], int | None]) -> bool:
    """The single-file store's rule: an event of `tier` older than its namespace's cutoff."""
    limit_us = cutoff(row[NAMESPACE])
    return limit_us is not None and row[TIME] < limit_us and row[_TIER] == tier


def _of_namespaces(row: list[Any], tier: str, namespaces: set[str]) -> bool:
    return row[NAMESPACE] in namespaces and row[_TIER] == tier


def _after(row: list[Any], after: tuple[int, int], head: int, keep: RowTest) -> bool:
    return row[SEQ] <= head and (row[TIME], row[SEQ]) > after and keep(row)


def _expiring_blocks(conn: sqlite3.Connection, cutoff: Callable[[str], int | None], after: tuple[int, int],
                     head: int) -> list[BlockHeader]:
    """Blocks of the legacy partition that may hold events older than their namespace's cutoff
    (a block is one namespace's) and not before `after`."""
    return [h for h in _headers(conn, "min_seq <= ? AND max_time >= ?", [head, after[0]])
            if (c := cutoff(h.namespace)) is not None and h.min_time < c]
