"""The write side of the SQLite store: one chain, events in time partitions (docs/storage-model.md).

One writer thread owns this object. `store_batch` dedups across partitions, assigns gapless seqs,
extends the hash chain, writes the events of each partition file (tier and period) as blocks of
one stream each (sqlite_bulk.py), and commits the partitions first and the main file last: the
main file is the commit record, so a crash between the two leaves blocks past the committed head,
which do not exist for readers and are deleted at the next open (crash rule, storage-model §5). A
transaction that fails there (a full disk) leaves the same: its new partition files go at once,
and its blocks in listed ones before the next transaction writes (a retry reuses their seqs), so
a disk that fills anywhere in a transaction heals when space returns, with no restart. After a
commit, a stream's small blocks are merged (sqlite_compact.py). Removing events goes the other
way: the main file commits the anchors and the purge record first, then blocks are rewritten
without them (sqlite_block_purge.py) or files go. Partition files of the row model are converted
to blocks when the store opens (sqlite_convert.py).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import pathlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fleetlog.collector.store import (
    ROW_COLUMNS,
    Checkpointer,
    CheckpointRow,
    DeleteResult,
    IncomingEvents,
    StoreResult,
    merge_ranges,
)
from fleetlog.collector.store.blocks import (
    HASH,
    ORIGIN,
    POS,
    SEQ,
    TIME,
    BlockError,
    EncodedBlock,
    event_ids,
)
from fleetlog.collector.store.event_rows import chunk_columns
from fleetlog.collector.store.partitions import (
    ConnectionPool,
    Partition,
    partition_dir,
    partition_name,
    partition_path,
    read_catalogue,
    remove_partition_file,
)
from fleetlog.collector.store.schema import create_main_schema, create_partition_schema
from fleetlog.collector.store.sqlite_block_purge import CHAIN_COLUMNS, Removal, apply_removal, plan_removal
from fleetlog.collector.store.sqlite_blocks import (
    blocks_overlapping,
    decode_stored,
    delete_blocks,
    file_transaction,
)
from fleetlog.collector.store.sqlite_bulk import PartitionConnection, stream_column_blocks, wait_all
from fleetlog.collector.store.sqlite_compact import FAN_IN, TIERS, compact_stream
from fleetlog.collector.store.sqlite_convert import convert_row_partitions
from fleetlog.collector.store.sqlite_migrate import migrate_single_file
from fleetlog.collector.store.sqlite_util import CHAIN, connect, store_bytes
from fleetlog.common import chain
from fleetlog.common.errors import StorageError
from fleetlog.common.timefmt import now_us

log = logging.getLogger("fleetlog.collector.store")

_TIER = ROW_COLUMNS.index("tier")
INSERT_CHECKPOINT = ("INSERT OR REPLACE INTO checkpoints(seq, key_id, collector, chain_hash, time, signature)"
                     " VALUES (?, ?, ?, ?, ?, ?)")
DEFAULT_PERIOD_S = 86400.0
WRITER_PARTITION_CACHE_KIB = 16 * 1024
PARTITION_THREADS = 4
MERGE_BUDGET = 16_384       # events re-encoded by merges after one commit, at least (~0.3 s)
OPEN_PARTITIONS = 8


@dataclass
class _Pending:
    """What one transaction adds to one partition, applied to the catalogue at commit."""

    part: Partition
    events: int
    new: bool
    blocks: list[EncodedBlock] = field(default_factory=list)
    spans: dict[int, list[int]] = field(default_factory=dict)      # origin -> [min_pos, max_pos]
    namespaces: dict[str, int] = field(default_factory=dict)       # namespace -> events


class SqliteStore:
    """The write side (collector.store.EventWriter). Not thread-safe: call it from one thread
    (the collector's writer)."""

    chain = CHAIN

    def __init__(self, path: str | os.PathLike[str], synchronous: str = "full", collector: str = "",
                 partition_period: float = DEFAULT_PERIOD_S, writer_shards: int = 1):
        self.path = str(path)
        pathlib.Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.migrated = migrate_single_file(self.path)
        self.created = not os.path.exists(self.path)
        self.collector = collector
        self.synchronous = synchronous
        self.conn = connect(self.path, synchronous)
        try:
            create_main_schema(self.conn)
            if self._meta("partition_period") is None:
                self.conn.execute("INSERT INTO meta(key, value) VALUES ('partition_period', ?)",
                                  (str(int(partition_period * 1_000_000)),))
            self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('chain', ?)", (CHAIN,))
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot create the schema: {exc}") from None
        # A new period applies to partitions created from now on; existing ones keep theirs.
        self.period_us = max(1_000_000, int(partition_period * 1_000_000))
        # `[storage] writer_shards` is accepted (a documented key) but no longer splits a tier's
        # period over several files: most of a transaction's cost is encoding blocks, Python under
        # the GIL, so a second file stored no faster (issue 30, measured) and cut every stream's
        # blocks in two. Shard files an older version made (`-s1` ...) stay partitions like any.
        self.shards = max(1, int(writer_shards))
        # The files of one transaction (tiers, late days) are written and synced side by side, and
        # its links made beside the encoding of its blocks (_hand_over): no task here waits on
        # another but the encodings on the linking, which is submitted first.
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=PARTITION_THREADS,
                                                              thread_name_prefix="partition-writer")
        self._origins: dict[tuple[str, str], int] = {
            (host, key): oid for oid, host, key in self.conn.execute("SELECT id, host, source_key FROM origins")
        }
        self._addresses: set[tuple[str, str]] = set(self.conn.execute("SELECT host, ip FROM node_addresses"))
        self.last_seq = int(self._meta("last_seq") or 0)
        head = self._meta("chain_head")
        self.chain_head = bytes.fromhex(head) if head else chain.GENESIS
        self.last_checkpoint_seq = int(self.conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoints").fetchone()[0])
        self.pool = ConnectionPool(self.path, self._open_partition, OPEN_PARTITIONS)
        # Listed partitions that may hold blocks of a failed transaction past the committed head
        # (one file committed, then the disk filled): emptied of them before the next transaction.
        self._unclean: set[str] = set()
        # Seq ranges a committed purge step removed whose events a partition still holds (the
        # disk filled before they went): removed before the next write, never counted twice.
        self._deleted_left: list[tuple[int, int]] = []
        # (partition, namespace, host) -> small blocks added since its last compaction.
        self._small: dict[tuple[str, str, str], int] = {}
        self._due: dict[tuple[str, str, str], None] = {}     # streams to merge, oldest first
        self._load_catalogue()
        # Partition files of the row model become blocks (before repair, which works on blocks).
        convert_row_partitions(self.path, list(self.parts.values()), self.pool, self.conn, self.last_seq,
                               self._source_keys())
        self._repair()
        # Set by the collector's signer (collector.store.Checkpointer); called inside the
        # transaction so checkpoints commit with their events.
        self.checkpointer: Checkpointer | None = None
        self._lock = threading.RLock()

    # -- catalogue -----------------------------------------------------------------------------

    def _open_partition(self, path: str) -> PartitionConnection:
        conn = connect(path, self.synchronous, cache_kib=WRITER_PARTITION_CACHE_KIB, factory=PartitionConnection)
        assert isinstance(conn, PartitionConnection)
        try:
            create_partition_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _load_catalogue(self) -> None:
        self.parts: dict[str, Partition] = {p.name: p for p in read_catalogue(self.conn)}
        self._names = {p.id: p.name for p in self.parts.values()}
        self._spans: dict[int, dict[int, list[int]]] = {}     # origin -> {part id: [min_pos, max_pos]}
        for part, origin, low, high in self.conn.execute("SELECT part, origin, min_pos, max_pos FROM partition_origins"):
            self._spans.setdefault(origin, {})[part] = [low, high]
        self._namespaces: dict[int, dict[str, int]] = {}      # part id -> {namespace: events}
        for part, namespace, count in self.conn.execute("SELECT part, namespace, count FROM partition_namespaces"):
            self._namespaces.setdefault(part, {})[namespace] = count

    def _repair(self) -> None:
        """Crash rules 2 and 3: rows past the committed head and unlisted files do not exist; and
        a row purge step whose record committed is finished."""
        for (deleting,) in self.conn.execute("SELECT deleting FROM purge_pending WHERE deleting IS NOT NULL").fetchall():
            self._finish_deleting([tuple(r) for r in json.loads(deleting)])
        folder = partition_dir(self.path)
        if not folder.is_dir():
            return
        for file in sorted(folder.glob("*.db")):
            name = file.stem
            if name not in self.parts:
                log.warning("%s: removing partition file %s, which no committed transaction lists "
                            "(a crash interrupted its creation or its drop)", self.path, file.name)
                remove_partition_file(file)
                continue
            conn = self.pool.get(name)
            if conn is None:
                continue
            try:
                stale = _delete_past(conn, self.last_seq)
                if stale:
                    log.warning("%s: discarded %d uncommitted events past seq %d in partition %s",
                                self.path, stale, self.last_seq, name)
            except sqlite3.Error as exc:
                raise StorageError(f"{file}: cannot repair the partition: {exc}") from None
        self.pool.trim()

    def _finish_deleting(self, ranges: list[tuple[int, int]]) -> None:
        """Remove what is left of events a committed purge step removed (idempotent)."""
        for part in list(self.parts.values()):
            if not any(part.max_seq >= low and part.min_seq <= high for low, high in ranges):
                continue
            conn = self.partition_conn(part.name)
            try:
                apply_removal(conn, plan_removal(conn, ranges, self.last_seq, self._source_keys()))
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: finishing an interrupted purge step failed: {exc}") from exc

    def _source_keys(self) -> dict[int, tuple[str, str]]:
        """origin -> (host, source_key): what derives the ids a block leaves out."""
        return {oid: key for key, oid in self._origins.items()}

    def partitions(self) -> list[Partition]:
        """The live partitions (committed state), oldest first."""
        return sorted(self.parts.values(), key=lambda p: (p.min_time, p.id))

    def partition_conn(self, name: str) -> PartitionConnection:
        """The writer's connection to partition `name`, creating its file when new."""
        conn = self.pool.get(name, create=True)
        assert isinstance(conn, PartitionConnection)
        return conn

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _origin_id(self, host: str, source_key: str) -> int:
        key = (host, source_key)
        oid = self._origins.get(key)
        if oid is None:
            oid = self.conn.execute(
                "INSERT INTO origins(host, source_key) VALUES (?, ?) RETURNING id", key).fetchone()[0]
            self._origins[key] = oid
        return oid

    # -- storing -------------------------------------------------------------------------------

    def store_batch(self, batches: Sequence[IncomingEvents], received_at_us: int) -> list[StoreResult]:
        """Store every new event of `batches` in one transaction (collector.store.EventWriter)."""
        with self._lock:
            return self._store(batches, received_at_us)

    def _store(self, batches: Sequence[IncomingEvents], received_at_us: int,
               before_commit: Callable[[], None] | None = None) -> list[StoreResult]:
        self._finish_failed_writes()
        origins_before, addresses_before = dict(self._origins), set(self._addresses)
        seq, head, checkpoint_seq = self.last_seq, self.chain_head, self.last_checkpoint_seq
        opened: list[PartitionConnection] = []
        committed: list[PartitionConnection] = []
        pending: dict[str, _Pending] = {}
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            results = []
            # The transaction's new events by column (ROW_COLUMNS): chained, routed and encoded
            # as columns, with no list an event (docs/storage-model.md).
            table: list[list[Any]] = [[] for _ in ROW_COLUMNS]
            added: dict[int, set[int]] = {}
            writing: list[concurrent.futures.Future[None]] = []
            try:
                for incoming in batches:
                    result, seq = self._events_for(incoming, received_at_us, seq, table, added)
                    results.append(result)
                if table[SEQ]:
                    # Chained inside the transaction: no acknowledged event is ever unchained.
                    head = self._hand_over(table, head, pending, opened, writing)
                    # The main file's part of the transaction, while the blocks are written.
                    self._catalogue_add(pending)
                    self.conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                          (("last_seq", str(seq)), ("chain_head", head.hex())))
                    if self.checkpointer is not None:
                        signed = self.checkpointer(table[SEQ][0], table[HASH], checkpoint_seq)
                        if signed:
                            self.conn.executemany(INSERT_CHECKPOINT, signed)
                            checkpoint_seq = signed[-1][0]
            finally:
                wait_all(writing)
            if before_commit is not None:
                before_commit()
            # Partitions first (each its own fsync, in parallel), the main file (the commit
            # record) last.
            def commit(conn: PartitionConnection) -> None:
                conn.commit_batch()
                committed.append(conn)
            wait_all([self._threads.submit(commit, conn) for conn in opened])
            self.conn.execute("COMMIT")
        except BaseException as exc:
            # Also a value the chain cannot encode: no transaction may stay open, or every later
            # batch would fail to BEGIN.
            for conn in opened:
                if conn not in committed:
                    conn.rollback_batch()
            _rollback(self.conn)
            self._undo_partitions(pending)
            self._origins, self._addresses = origins_before, addresses_before
            if isinstance(exc, sqlite3.Error):
                # `from exc`: the writer reads sqlite_errorname, and waits out a full disk.
                raise StorageError(f"{self.path}: storing a batch failed: {exc}") from exc
            raise
        self.last_seq, self.chain_head, self.last_checkpoint_seq = seq, head, checkpoint_seq
        for item in pending.values():
            self._apply(item)
        self._compact_small(pending)
        self.pool.trim()
        return results

    def _compact_small(self, pending: dict[str, _Pending]) -> None:
        """Merge the small blocks of streams that got FAN_IN small blocks since their last look
        (sqlite_compact.py), re-encoding at most MERGE_BUDGET events (or four times this
        transaction's) per commit: a fleet whose streams all come due in the same transaction
        is merged over the next few, not in one long stall of the writer. A merge that fails (a
        full disk) leaves the blocks as they are, for a later one: it never fails the
        transaction, committed already."""
        for name, item in pending.items():
            for block in item.blocks:
                if block.count < TIERS[-1]:
                    key = (name, block.namespace, block.host)
                    self._small[key] = self._small.get(key, 0) + 1
                    if self._small[key] >= FAN_IN:
                        self._due[key] = None
        budget = max(MERGE_BUDGET, 4 * sum(item.events for item in pending.values()))
        while self._due and budget > 0:
            key = next(iter(self._due))
            name, namespace, host = key
            try:
                spent, done = compact_stream(self.partition_conn(name), namespace, host, self.last_seq, budget)
            except (sqlite3.Error, BlockError) as exc:
                log.warning("%s: merging the small blocks of %s/%s in partition %s failed: %s", self.path,
                            namespace, host, name, exc)
                spent, done = 0, True
            budget -= spent
            if done:
                del self._due[key]
                self._small.pop(key, None)

    def _undo_partitions(self, pending: dict[str, _Pending]) -> None:
        """After a failed transaction, each partition file as it was before, as far as anyone can
        see: a new partition's file goes (the rolled-back main file never listed it); rows that
        reached a listed one are past the committed head, invisible to readers and dedup, and are
        deleted now, or before the next transaction if the disk is still too full to delete."""
        for name, item in pending.items():
            if item.new:
                self.pool.forget(name)
                remove_partition_file(partition_path(self.path, name))
            else:
                self._unclean.add(name)
        try:
            self._clean_past_head()
        except StorageError as exc:
            log.debug("%s", exc)   # still full: the writer holds the batch and says so, once

    def _finish_failed_writes(self) -> None:
        """What failed writes left in partition files goes before the next write starts: rows of
        a failed transaction, rows a committed purge step removed. Raises StorageError (its cause
        the sqlite3 error, so a full disk is held and retried) while that cannot be written."""
        self._clean_past_head()
        if self._deleted_left:
            self._finish_deleting(self._deleted_left)
            self._deleted_left = []

    def _clean_past_head(self) -> None:
        """Delete what failed transactions left past the committed head in listed partitions.
        Raises StorageError (its cause the sqlite3 error) while that cannot be written: a retry
        must not start, or it would meet its own seqs there (UNIQUE constraint failed)."""
        for name in sorted(self._unclean):
            conn = self.pool.get(name)
            if conn is not None:
                try:
                    _delete_past(conn, self.last_seq)
                except sqlite3.Error as exc:
                    raise StorageError(f"{partition_path(self.path, name)}: removing the rows of a failed "
                                       f"transaction failed: {exc}") from exc
            self._unclean.discard(name)

    def _hand_over(self, table: list[list[Any]], head: bytes, pending: dict[str, _Pending],
                   opened: list[PartitionConnection], writing: list[concurrent.futures.Future[None]]) -> bytes:
        """Chain the transaction's events (`table`, by column), route them to their partitions and
        start writing each file's blocks in its thread. Returns the new head.

        The links are made in a partition thread (the C chain step lets the GIL go for most of
        it) while the other threads encode the blocks of the usual transaction, one partition,
        as far as they do not need the links: the writer's thread bounds the ingest rate."""
        before = head
        linking = self._threads.submit(chain.link_columns, head, table, CHAIN_COLUMNS, HASH)
        links, first = table[HASH], table[SEQ][0]

        def linked() -> list[bytes]:
            """Every link of the transaction, once made."""
            linking.result()
            return links

        def link_before(seq: int) -> bytes:
            """The whole link of seq - 1: of this transaction, or the head it started from."""
            return bytes(links[seq - 1 - first]) if seq > first else before

        try:
            groups = _one_partition(table, self.period_us)
            table_links: Callable[[], list[bytes]] | None = linked
            if groups is None:      # split by partition: each group's columns are copies, links too
                table_links = None
                linked()
                groups = _by_partition(table, self.period_us)
            for name, routed in self._route(groups, pending).items():
                conn = self.partition_conn(name)
                conn.begin_batch()
                opened.append(conn)
                blocks = stream_column_blocks(routed, link_before, self._threads, table_links)
                pending[name].blocks += blocks
                writing.append(self._threads.submit(conn.insert_blocks, blocks))
            return linking.result()
        finally:
            concurrent.futures.wait([linking])     # never left reading the table past a failure

    def _route(self, groups: dict[tuple[str, int], list[list[Any]]],
               pending: dict[str, _Pending]) -> dict[str, list[list[Any]]]:
        """The events (by column) of each (tier, period start) by partition name. Adds them to
        `pending` (new partitions get their file)."""
        routed: dict[str, list[list[Any]]] = {}
        for (tier, start), group in groups.items():
            name = partition_name(tier, start)
            item = pending.get(name)
            if item is None:
                part = self.parts.get(name)
                new = part is None
                if part is None:
                    part = self._new_partition(name, tier, start)
                item = pending[name] = _Pending(replace(part), 0, new)
            routed[name] = group
            item.events += len(group[SEQ])
        return routed

    def _new_partition(self, name: str, tier: str, start: int) -> Partition:
        path = partition_path(self.path, name)
        # Not listed, so not committed: whatever a crashed transaction left there goes.
        self.pool.forget(name)
        remove_partition_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return Partition(0, name, tier, start, start + self.period_us, 0, 0, 0, 0, 0)

    def _catalogue_add(self, pending: dict[str, _Pending]) -> None:
        """The main file's catalogue, spans and namespace counts for the rows of this transaction,
        from the skip columns of their blocks (each block already summed its events up)."""
        for item in pending.values():
            blocks, part = item.blocks, item.part
            seqs = (min(b.min_seq for b in blocks), max(b.max_seq for b in blocks))
            times = (min(b.min_time for b in blocks), max(b.max_time for b in blocks))
            count = sum(b.count for b in blocks)
            if item.new:
                part.min_seq, part.max_seq, part.min_time, part.max_time = seqs[0], seqs[1], times[0], times[1]
                part.count = count
                part.id = self.conn.execute(
                    "INSERT INTO partitions(name, tier, period_start, period_end, min_seq, max_seq, min_time,"
                    " max_time, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (part.name, part.tier, part.period_start, part.period_end, part.min_seq, part.max_seq,
                     part.min_time, part.max_time, part.count)).fetchone()[0]
            else:
                part.min_seq, part.max_seq = min(part.min_seq, seqs[0]), max(part.max_seq, seqs[1])
                part.min_time, part.max_time = min(part.min_time, times[0]), max(part.max_time, times[1])
                part.count += count
                self.conn.execute(
                    "UPDATE partitions SET min_seq = ?, max_seq = ?, min_time = ?, max_time = ?, count = ?"
                    " WHERE id = ?", (part.min_seq, part.max_seq, part.min_time, part.max_time, part.count, part.id))
            spans: dict[int, list[int]] = {}
            namespaces: dict[str, int] = {}
            for block in blocks:
                for origin, (low, high) in block.origins.items():
                    span = spans.get(origin)
                    if span is None:
                        spans[origin] = [low, high]
                    else:
                        span[0], span[1] = min(span[0], low), max(span[1], high)
                namespaces[block.namespace] = namespaces.get(block.namespace, 0) + block.count
            self.conn.executemany(
                "INSERT INTO partition_origins(part, origin, min_pos, max_pos) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(part, origin) DO UPDATE SET min_pos = min(min_pos, excluded.min_pos),"
                " max_pos = max(max_pos, excluded.max_pos)",
                ((part.id, origin, low, high) for origin, (low, high) in spans.items()))
            self.conn.executemany(
                "INSERT INTO partition_namespaces(part, namespace, count) VALUES (?, ?, ?)"
                " ON CONFLICT(part, namespace) DO UPDATE SET count = count + excluded.count",
                ((part.id, ns, n) for ns, n in namespaces.items()))
            item.spans, item.namespaces = spans, namespaces

    def _apply(self, item: _Pending) -> None:
        """After commit: the in-memory catalogue follows the main file."""
        part = item.part
        self.parts[part.name] = part
        self._names[part.id] = part.name
        for origin, (low, high) in item.spans.items():
            span = self._spans.setdefault(origin, {}).get(part.id)
            if span is None:
                self._spans[origin][part.id] = [low, high]
            else:
                span[0], span[1] = min(span[0], low), max(span[1], high)
        counts = self._namespaces.setdefault(part.id, {})
        for ns, n in item.namespaces.items():
            counts[ns] = counts.get(ns, 0) + n

    def _seen(self, origin: int, low: int, high: int) -> set[int]:
        """Positions of `origin` in [low, high] already stored, in whichever partition: only those
        whose span for this origin overlaps are probed (usually the hot one), and in them only the
        blocks whose span does."""
        seen: set[int] = set()
        for part_id, (first, last) in self._spans.get(origin, {}).items():
            if last < low or first > high:
                continue
            conn = self.partition_conn(self._names[part_id])
            for block_id in blocks_overlapping(conn, origin, low, high):
                block = decode_stored(conn, block_id)
                if block is None:
                    continue
                seen.update(row[POS] for row in block.rows
                            if row[ORIGIN] == origin and low <= row[POS] <= high and row[SEQ] <= self.last_seq)
        return seen

    def _events_for(self, incoming: IncomingEvents, received_at: int, seq: int, table: list[list[Any]],
                    added: dict[int, set[int]]) -> tuple[StoreResult, int]:
        """Append the new events of one chunk to `table` (a list per ROW_COLUMNS name; hash still
        None)."""
        result = StoreResult()
        count = len(incoming)
        if count == 0:
            return result, seq
        host = incoming.host
        origin = self._origin_id(host, incoming.source_key)
        positions = incoming.position
        low, high = min(positions), max(positions)
        seen = self._seen(origin, low, high)
        in_transaction = added.setdefault(origin, set())
        seen |= in_transaction
        collector, host_ip, source_key = self.collector or None, incoming.host_ip or None, incoming.source_key
        namespace, source, log_type = incoming.namespace, incoming.source, incoming.log_type
        if host_ip and (host, host_ip) not in self._addresses:
            self.conn.execute("INSERT OR IGNORE INTO node_addresses(host, ip) VALUES (?, ?)", (host, host_ip))
            self._addresses.add((host, host_ip))
        columns: Sequence[Sequence[Any]] = (
            positions, incoming.time_us, incoming.app, incoming.pid, incoming.level, incoming.request_id,
            incoming.user, incoming.action, incoming.message, incoming.fields_json, incoming.tier, incoming.flags,
            # The ids (contract §4.2: hashed into the chain, not stored) in one C loop, not a
            # Python call an event; the intake's batches have them already.
            incoming.ids if incoming.ids is not None else event_ids(host, source_key, positions))
        duplicates = 0
        fresh = set(positions)
        if len(fresh) == count and seen.isdisjoint(fresh):
            in_transaction |= fresh          # every event new: the usual chunk
        else:
            keep = []
            for i, pos in enumerate(positions):
                if pos in seen:
                    duplicates += 1
                    continue
                seen.add(pos)
                in_transaction.add(pos)
                keep.append(i)
            columns = [[column[i] for i in keep] for column in columns]
            count = len(keep)
        first = seq + 1
        seq += count
        chunk = chunk_columns(first, origin, received_at, host, host_ip, collector, namespace, source, log_type,
                              columns)
        if table[SEQ]:
            for column, values in zip(table, chunk):
                column.extend(values)
        else:
            table[:] = chunk        # the transaction's first chunk: its new lists are the table
        result.stored = seq - first + 1
        result.duplicates = duplicates
        if result.stored:
            result.first_seq, result.last_seq = first, seq
        result.stored_by_host[host] = result.stored
        result.duplicates_by_host[host] = duplicates
        return result, seq

    # -- removing ------------------------------------------------------------------------------

    def delete_events(self, seqs: Sequence[int], journal: Callable[[DeleteResult], tuple[str, str]] | None = None
                      ) -> DeleteResult:
        """Delete events by seq (callers keep batches small so ingestion never waits long),
        keeping the rest verifiable: for every deleted seq whose successor is not deleted in this
        call, its chain link is kept in chain_anchors. Returns what the purge event records.
        `journal(result)` -> (tier, state): a purge in progress, committed with the anchors, so a
        crash before the purge event is recorded leaves what was deleted on record."""
        result = DeleteResult()
        if not seqs:
            return result
        wanted = sorted(set(seqs))
        with self._lock:
            self._finish_failed_writes()   # else rows a failed step left are found, and counted, again
            found: dict[str, Removal] = {}
            ranges = merge_ranges(wanted)
            try:
                for part in self.parts.values():
                    if part.max_seq < wanted[0] or part.min_seq > wanted[-1]:
                        continue
                    conn = self.partition_conn(part.name)
                    removal = plan_removal(conn, ranges, self.last_seq, self._source_keys())
                    if removal.removed:
                        found[part.name] = removal
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: finding events to delete failed: {exc}") from None
            every = sorted((row for removal in found.values() for row in removal.removed), key=lambda r: r[0])
            if not every:
                return result
            anchors = result.record(every)
            # The record first: anchors, counts and the journal commit before the rows go.
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany("INSERT OR REPLACE INTO chain_anchors(seq, link) VALUES (?, ?)", anchors)
                for name, removal in found.items():
                    part = self.parts[name]
                    rows = removal.removed
                    self.conn.execute("UPDATE partitions SET count = count - ? WHERE id = ?", (len(rows), part.id))
                    by_ns: dict[str, int] = {}
                    for row in rows:
                        by_ns[row[2]] = by_ns.get(row[2], 0) + 1
                    self.conn.executemany("UPDATE partition_namespaces SET count = count - ? WHERE part = ? AND namespace = ?",
                                          ((n, part.id, ns) for ns, n in by_ns.items()))
                if journal is not None:
                    self.conn.execute("INSERT OR REPLACE INTO purge_pending(tier, state, deleting) VALUES (?, ?, ?)",
                                      (*journal(result), json.dumps(result.ranges)))
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(self.conn)
                raise StorageError(f"{self.path}: deleting events failed: {exc}") from None
            for name, removal in found.items():
                part = self.parts[name]
                part.count -= len(removal.removed)
                counts = self._namespaces.setdefault(part.id, {})
                for row in removal.removed:
                    counts[row[2]] = counts.get(row[2], 0) - 1
                conn = self.partition_conn(name)
                try:
                    apply_removal(conn, removal)
                except sqlite3.Error as exc:
                    self._deleted_left += result.ranges
                    raise StorageError(f"{self.path}: deleting events from partition {name} failed: {exc}") from exc
            self.pool.trim()
        return result

    def add_anchors(self, anchors: Sequence[tuple[int, bytes]]) -> None:
        """Anchors ahead of a drop (harmless alone: they only continue the chain over a gap)."""
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany("INSERT OR REPLACE INTO chain_anchors(seq, link) VALUES (?, ?)", anchors)
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(self.conn)
                raise StorageError(f"{self.path}: writing chain anchors failed: {exc}") from None

    def drop_partitions(self, tier: str, expected: dict[str, int],
                        record: Callable[[list[Partition]], list[IncomingEvents]]) -> list[Partition]:
        """Unlist the partitions `expected` names (name -> max_seq when scanned; one that grew
        since is kept for the next run) and store `record(dropped)` — the purge event — and clear
        `tier`'s purge journal, all in one main-file transaction; then delete their files."""
        with self._lock:
            dropping = [replace(p) for name, max_seq in expected.items()
                        if (p := self.parts.get(name)) is not None and p.max_seq == max_seq]
            ids = [p.id for p in dropping]

            def unlist() -> None:
                marks = ",".join("?" * len(ids))
                if ids:
                    self.conn.execute(f"DELETE FROM partitions WHERE id IN ({marks})", ids)
                    self.conn.execute(f"DELETE FROM partition_origins WHERE part IN ({marks})", ids)
                    self.conn.execute(f"DELETE FROM partition_namespaces WHERE part IN ({marks})", ids)
                self.conn.execute("DELETE FROM purge_pending WHERE tier = ?", (tier,))

            batches = record(dropping)
            self._store(batches, now_us(), before_commit=unlist)
            for part in dropping:
                self.pool.forget(part.name)
                remove_partition_file(partition_path(self.path, part.name))
                self.parts.pop(part.name, None)
                self._names.pop(part.id, None)
                self._namespaces.pop(part.id, None)
                for key in [key for key in self._small if key[0] == part.name]:
                    del self._small[key]
                    self._due.pop(key, None)
                for spans in self._spans.values():
                    spans.pop(part.id, None)
            return dropping

    def anchors_within(self, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, bytes]]:
        """The stored anchors whose seq lies in these inclusive ranges, in seq order."""
        found: list[tuple[int, bytes]] = []
        for low, high in ranges:
            found += self.conn.execute("SELECT seq, link FROM chain_anchors WHERE seq BETWEEN ? AND ? ORDER BY seq",
                                       (low, high)).fetchall()
        return found

    def pending_purges(self) -> list[tuple[str, str]]:
        """(tier, state) of row purges a crash interrupted before their purge event."""
        return list(self.conn.execute("SELECT tier, state FROM purge_pending ORDER BY tier"))

    # -- checkpoints and keys ------------------------------------------------------------------

    def add_checkpoint(self, row: CheckpointRow) -> None:
        with self._lock:
            try:
                self.conn.execute(INSERT_CHECKPOINT, row)   # autocommit: one small transaction
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: writing a checkpoint failed: {exc}") from None
            self.last_checkpoint_seq = max(self.last_checkpoint_seq, row[0])

    def newest_signing_key(self) -> tuple[str, str] | None:
        row = self.conn.execute(
            "SELECT key_id, public_key FROM signing_keys ORDER BY first_seq DESC, added_at DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    def add_signing_key(self, key_id: str, public_pem: str, first_seq: int, added_at_us: int) -> None:
        try:
            self.conn.execute(
                "INSERT OR REPLACE INTO signing_keys(key_id, public_key, first_seq, added_at) VALUES (?, ?, ?, ?)",
                (key_id, public_pem, first_seq, added_at_us))
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: recording the signing key failed: {exc}") from None

    def latest_checkpoint(self, prefer_key_id: str) -> CheckpointRow | None:
        row = self.conn.execute(
            "SELECT seq, key_id, collector, chain_hash, time, signature FROM checkpoints"
            " ORDER BY seq DESC, key_id = ? DESC LIMIT 1", (prefer_key_id,)).fetchone()
        return tuple(row) if row else None

    def public_keys(self, first_key_id: str) -> list[str]:
        return [pem for (pem,) in self.conn.execute(
            "SELECT public_key FROM signing_keys ORDER BY key_id = ? DESC, first_seq DESC", (first_key_id,))]

    # -- the rest ------------------------------------------------------------------------------

    def chain_of(self, event: dict[str, Any]) -> str:
        """One chain per store."""
        return self.chain

    def last_checkpoint_time(self) -> float:
        """Unix seconds of the newest signed checkpoint; 0 when none was signed yet."""
        row = self.conn.execute("SELECT max(time) FROM checkpoints").fetchone()
        return (row[0] or 0) / 1e6

    def storage_bytes(self) -> int:
        return store_bytes(self.path)

    def close(self) -> None:
        with self._lock:
            self._threads.shutdown()
            for conn in [self.conn, *(self.pool.get(n) for n in self.pool.names())]:
                if conn is None:
                    continue
                try:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    pass  # a busy reader keeps the WAL; it is checkpointed on next open
            self.pool.close()
            self.conn.close()


def _one_partition(table: list[list[Any]], period: int) -> dict[tuple[str, int], list[list[Any]]] | None:
    """{(tier, period start): table} when every event goes to one partition, the usual
    transaction (checked with C loops over two columns); else None."""
    tiers = set(table[_TIER])
    if len(tiers) != 1:
        return None
    times = table[TIME]
    first, last = min(times), max(times)
    start = first - first % period
    if last - last % period != start:
        return None
    return {(tiers.pop(), start): table}


def _by_partition(table: list[list[Any]], period: int) -> dict[tuple[str, int], list[list[Any]]]:
    """The events by (tier, period start), in order of first appearance, each group by column."""
    at: dict[tuple[str, int], list[int]] = {}
    for i, (tier, time_us) in enumerate(zip(table[_TIER], table[TIME])):
        key = (tier, time_us - time_us % period)
        indexes = at.get(key)
        if indexes is None:
            indexes = at[key] = []
        indexes.append(i)
    return {key: [[column[i] for i in indexes] for column in table] for key, indexes in at.items()}


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # no transaction was open: nothing to undo


def _delete_past(conn: sqlite3.Connection, last_seq: int) -> int:
    """Delete a partition's blocks past `last_seq` (uncommitted: the main file never recorded
    them; a transaction's blocks hold only its own seqs, and a merge takes only committed blocks),
    in one transaction; returns how many events they held."""
    stale = conn.execute("SELECT id, count FROM blocks WHERE min_seq > ?", (last_seq,)).fetchall()
    if stale:
        with file_transaction(conn):
            delete_blocks(conn, [block_id for block_id, _ in stale])
    return sum(count for _, count in stale)
