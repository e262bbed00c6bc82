"""The embedded SQLite event store.

One writer thread owns the write connection (`SqliteStore`); readers open their own connections
(`SqliteReader`), which WAL lets run beside the writer. `store_batch` dedups, assigns gapless seqs,
extends the hash chain and inserts events plus their full-text rows, all in one transaction.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlite_utils

from collector.store import (
    EVENT_COLUMNS,
    Checkpointer,
    CheckpointRow,
    Cursor,
    DeleteResult,
    IncomingEvents,
    StoreResult,
    StoreStatus,
    anchors_digest,
    row_to_event,  # noqa: F401 — re-exported: tools and tests take the row helpers from here
)
from collector.store.schema import create_schema
from collector.store.sqlite_query import INDEXED_FILTERS, compile_where, probe_sql, register_functions
from common import chain
from common.errors import StorageError
from common.ids import event_id

if TYPE_CHECKING:
    from collector.filters import FilterSpec

# The writer's row, in this column order; the chain fills in `hash` (the last) for a whole batch.
_ROW_COLUMNS = ("seq", "origin", "pos", "id", "time", "received_at", "host", "host_ip", "collector", "namespace",
                "source", "log_type", "app", "pid", "level", "request_id", "user", "action", "message", "fields",
                "tier", "truncated", "hash")
_INSERT_EVENT = f"INSERT INTO events({', '.join(_ROW_COLUMNS)}) VALUES ({','.join('?' * len(_ROW_COLUMNS))})"
_CHAIN_COLUMNS = tuple(_ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS)
_HASH_COLUMN = _ROW_COLUMNS.index("hash")
_MESSAGE_COLUMN = _ROW_COLUMNS.index("message")
_INSERT_FTS = "INSERT INTO events_fts(rowid, message) VALUES (?, ?)"
_SELECT_COLUMNS = ", ".join(EVENT_COLUMNS)
_INSERT_CHECKPOINT = ("INSERT OR REPLACE INTO checkpoints(seq, key_id, collector, chain_hash, time, signature)"
                      " VALUES (?, ?, ?, ?, ?, ?)")
# SQLite has one chain per store (issue 19's writer shards will add more); its id.
CHAIN = "main"
READER_CACHE_KIB = 8 * 1024


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
        conn.execute("PRAGMA temp_store=MEMORY")
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open the event store: {exc}") from None
    return conn


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for seq in seqs:
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


class SqliteStore:
    """The write side (collector.store.EventWriter). Not thread-safe: call it from one thread
    (the collector's writer)."""

    chain = CHAIN

    def __init__(self, path: str | os.PathLike, synchronous: str = "full", collector: str = ""):
        self.path = str(path)
        pathlib.Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.created = not os.path.exists(self.path)
        self.collector = collector
        self.conn = _connect(self.path, synchronous)
        try:
            create_schema(sqlite_utils.Database(self.conn))
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot create the schema: {exc}") from None
        self._origins: dict[tuple[str, str], int] = {
            (host, key): oid for oid, host, key in self.conn.execute("SELECT id, host, source_key FROM origins")
        }
        self._addresses: set[tuple[str, str]] = set(self.conn.execute("SELECT host, ip FROM node_addresses"))
        self.last_seq = int(self._meta("last_seq") or 0)
        head = self._meta("chain_head")
        self.chain_head = bytes.fromhex(head) if head else chain.GENESIS
        self.last_checkpoint_seq = int(self.conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoints").fetchone()[0])
        # Set by the collector's signer (collector.store.Checkpointer); called inside the
        # transaction so checkpoints commit with their events.
        self.checkpointer: Checkpointer | None = None
        self._lock = threading.Lock()

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

    def store_batch(self, batches: Sequence[IncomingEvents], received_at_us: int) -> list[StoreResult]:
        """Store every new event of `batches` in one transaction (see Storage.store_batch)."""
        with self._lock:
            origins_before = dict(self._origins)
            seq, head, checkpoint_seq = self.last_seq, self.chain_head, self.last_checkpoint_seq
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                results = []
                event_rows: list[list] = []
                for incoming in batches:
                    result, seq = self._rows_for(incoming, received_at_us, seq, event_rows)
                    results.append(result)
                if event_rows:
                    # Inside the transaction: no acknowledged event is ever unchained.
                    head = chain.link_rows(head, event_rows, _CHAIN_COLUMNS, _HASH_COLUMN)
                    self.conn.executemany(_INSERT_EVENT, event_rows)
                    self.conn.executemany(_INSERT_FTS, ((row[0], row[_MESSAGE_COLUMN]) for row in event_rows))
                    self.conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                          (("last_seq", str(seq)), ("chain_head", head.hex())))
                    if self.checkpointer is not None:
                        signed = self.checkpointer(event_rows, checkpoint_seq)
                        if signed:
                            self.conn.executemany(_INSERT_CHECKPOINT, signed)
                            checkpoint_seq = signed[-1][0]
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._origins = origins_before
                raise StorageError(f"{self.path}: storing a batch failed: {exc}") from None
            except BaseException:
                # A value the chain cannot encode (or any other surprise) must not leave the
                # transaction open: every later batch would fail to BEGIN.
                self._rollback()
                self._origins = origins_before
                raise
            self.last_seq, self.chain_head, self.last_checkpoint_seq = seq, head, checkpoint_seq
            return results

    def _rows_for(self, incoming: IncomingEvents, received_at: int, seq: int,
                  out: list[list]) -> tuple[StoreResult, int]:
        """Append the new events of one chunk to `out` as rows (_ROW_COLUMNS, hash still None)."""
        result = StoreResult()
        count = len(incoming)
        if count == 0:
            return result, seq
        host = incoming.host
        origin = self._origin_id(host, incoming.source_key)
        positions = incoming.position
        low, high = min(positions), max(positions)
        seen = {pos for (pos,) in self.conn.execute(
            "SELECT pos FROM events WHERE origin = ? AND pos BETWEEN ? AND ?", (origin, low, high))}
        collector, host_ip, source_key = self.collector or None, incoming.host_ip or None, incoming.source_key
        namespace, source, log_type = incoming.namespace, incoming.source, incoming.log_type
        if host_ip and (host, host_ip) not in self._addresses:
            self.conn.execute("INSERT OR IGNORE INTO node_addresses(host, ip) VALUES (?, ?)", (host, host_ip))
            self._addresses.add((host, host_ip))
        times, levels, messages, flags = incoming.time_us, incoming.level, incoming.message, incoming.flags
        request_ids, users, actions = incoming.request_id, incoming.user, incoming.action
        apps, pids, fields, tiers = incoming.app, incoming.pid, incoming.fields_json, incoming.tier
        duplicates = 0
        first = seq + 1
        for i in range(count):
            pos = positions[i]
            if pos in seen:
                duplicates += 1
                continue
            seen.add(pos)
            seq += 1
            # Absent optional values are stored (and hashed) as NULL, never "" or 0.
            out.append([seq, origin, pos, event_id(host, source_key, pos), times[i], received_at, host, host_ip,
                        collector, namespace, source, log_type, apps[i] or None, pids[i] or None, levels[i],
                        request_ids[i] or None, users[i] or None, actions[i] or None, messages[i],
                        fields[i] or None, tiers[i], flags[i] & 1, None])
        result.stored = seq - first + 1
        result.duplicates = duplicates
        if result.stored:
            result.first_seq, result.last_seq = first, seq
        result.stored_by_host[host] = result.stored
        result.duplicates_by_host[host] = duplicates
        return result, seq

    def delete_events(self, seqs: Sequence[int]) -> DeleteResult:
        """Delete events by seq in one transaction (callers keep batches small so ingestion never
        waits long), keeping the rest verifiable: for every deleted seq whose successor is not
        deleted in this call, its chain link is kept in chain_anchors. Returns what the purge
        event records: count, time range, the deleted seq ranges and a digest of the anchors."""
        result = DeleteResult()
        if not seqs:
            return result
        wanted = sorted(set(seqs))
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                rows: list[tuple[int, str, int, bytes, str]] = []
                for start in range(0, len(wanted), 500):
                    part = wanted[start:start + 500]
                    rows += self.conn.execute(
                        "SELECT seq, message, time, hash, namespace FROM events"
                        f" WHERE seq IN ({','.join('?' * len(part))}) ORDER BY seq", part).fetchall()
                if rows:
                    deleted = {row[0] for row in rows}
                    anchors = [(seq, link) for seq, _, _, link, _ in rows if seq + 1 not in deleted]
                    self.conn.executemany("INSERT INTO events_fts(events_fts, rowid, message) VALUES('delete', ?, ?)",
                                          ((seq, message) for seq, message, _, _, _ in rows))
                    self.conn.executemany("INSERT OR REPLACE INTO chain_anchors(seq, link) VALUES (?, ?)", anchors)
                    self.conn.executemany("DELETE FROM events WHERE seq = ?", ((row[0],) for row in rows))
                    result.count = len(rows)
                    result.oldest_us = min(row[2] for row in rows)
                    result.newest_us = max(row[2] for row in rows)
                    result.ranges = _ranges(sorted(deleted))
                    result.anchors = anchors
                    result.anchors_sha256 = anchors_digest(anchors)
                    for row in rows:
                        result.namespaces[row[4]] = result.namespaces.get(row[4], 0) + 1
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"{self.path}: deleting events failed: {exc}") from None
        return result

    def drop_expired(self, tier: str, default_cutoff_us: int | None,
                     namespace_cutoffs: dict[str, int | None]) -> DeleteResult | None:
        """A single-file store has no partitions: retention deletes row by row."""
        return None

    def add_checkpoint(self, row: CheckpointRow) -> None:
        with self._lock:
            try:
                self.conn.execute(_INSERT_CHECKPOINT, row)   # autocommit: one small transaction
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

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction was open: nothing to undo

    def storage_bytes(self) -> int:
        return store_bytes(self.path)

    def close(self) -> None:
        with self._lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # a busy reader keeps the WAL; it is checkpointed on next open
            self.conn.close()


class SqliteReader:
    """The read side (collector.store.EventReader): one per thread (connections are cheap and run
    beside the writer under WAL)."""

    # A filter value matching at least this many events is "common" (see _walk_time).
    COMMON_MATCHES = 20_000

    def __init__(self, path: str):
        self.path = path
        try:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout=10000")
            # Small: there is one reader per thread, and each page cache is the process's memory
            # (SPEC §5: collector RSS < 250 MiB at any store size). The kernel's page cache, which
            # is not ours, keeps hot pages anyway.
            self.conn.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
            register_functions(self.conn)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the event store for reading: {exc}") from None

    # -- EventReader -------------------------------------------------------------------------

    def search(self, spec: FilterSpec, *, order: str = "asc", limit: int = 0,
               page_size: int = 1000) -> Iterator[list[tuple]]:
        spec = replace(spec, after_seq=0) if spec.after_seq else spec
        where, params = compile_where(spec, walk_time=self._walk_time(spec) if limit else frozenset())
        yield from self.query(where, params, order=order, limit=limit, batch=page_size)

    def _walk_time(self, spec: FilterSpec) -> frozenset[str]:
        """For a limited search in time order: which indexed filters to check while walking the
        time index. A filter whose value matches few events (under COMMON_MATCHES, counted on its
        own index) is best served by its index plus a sort; one that matches many events finds its
        first N matches soon on the time walk, so its index is left out of the plan."""
        common = set()
        for name in INDEXED_FILTERS:
            probe = probe_sql(spec, name, self.COMMON_MATCHES)
            if probe is not None and int(self.scalar(*probe) or 0) >= self.COMMON_MATCHES:
                common.add(name)
        return frozenset(common)

    def read_after(self, cursor: Cursor, spec: FilterSpec | None = None,
                   limit: int = 1000) -> list[tuple[str, list[tuple]]]:
        after = cursor.get(CHAIN, 0)
        if spec is None:
            where, params = "seq > ?", [after]
        else:
            where, params = compile_where(replace(spec, after_seq=0))
            where, params = f"{where or '1'} AND seq > ?", [*params, after]
        try:
            rows = self.conn.execute(f"SELECT {_SELECT_COLUMNS} FROM events WHERE {where} ORDER BY seq LIMIT ?",
                                     (*params, int(limit))).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: reading new events failed: {exc}") from None
        return [(CHAIN, rows)] if rows else []

    def event_id(self, chain: str, seq: int) -> str | None:
        return self.scalar("SELECT id FROM events WHERE seq = ?", (seq,))

    def heads(self) -> Cursor:
        head = int(self.scalar("SELECT max(seq) FROM events") or 0)
        return {CHAIN: head} if head else {}

    def status(self) -> StoreStatus:
        count = int(self.scalar("SELECT count(*) FROM events") or 0)
        return StoreStatus(event_count=count, heads=self.heads(), storage_bytes=store_bytes(self.path))

    # -- SQL-level access (the SQLite backend and its tests) ---------------------------------

    def query(self, where: str, params: Iterable[Any], order: str = "asc", limit: int = 0,
              batch: int = 1000) -> Iterator[list[tuple]]:
        """Rows (EVENT_COLUMNS order) matching `where`, ordered by (time, seq), in lists of `batch`."""
        direction = "DESC" if order == "desc" else "ASC"
        sql = f"SELECT {_SELECT_COLUMNS} FROM events WHERE {where or '1'} ORDER BY time {direction}, seq {direction}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        try:
            cursor = self.conn.execute(sql, tuple(params))
            while rows := cursor.fetchmany(batch):
                yield rows
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: search failed: {exc}") from None

    def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        try:
            row = self.conn.execute(sql, tuple(params)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: reading the store failed: {exc}") from None
        return row[0] if row else None

    def expired(self, tier: str, default_cutoff_us: int | None, namespace_cutoffs: dict[str, int | None],
                after: tuple[int, int], limit: int) -> list[tuple[int, int]]:
        """(time, seq) of up to `limit` events of `tier` older than their namespace's cutoff, after
        `after` in (time, seq) order. A cutoff of None means "kept indefinitely".

        Walks the time index from the oldest event up to the newest cutoff: reads run beside the
        writer (WAL), so finding what to delete costs ingestion nothing; only the deletes go
        through the writer, in small chunks."""
        cutoffs = [c for c in (default_cutoff_us, *namespace_cutoffs.values()) if c is not None]
        if not cutoffs:
            return []
        never = -(1 << 62)
        case, params = "?", [default_cutoff_us if default_cutoff_us is not None else never]
        if namespace_cutoffs:
            whens = " ".join("WHEN ? THEN ?" for _ in namespace_cutoffs)
            case = f"CASE namespace {whens} ELSE ? END"
            params = [v for ns, c in namespace_cutoffs.items() for v in (ns, c if c is not None else never)] + params
        sql = (f"SELECT time, seq FROM events INDEXED BY events_time WHERE time < ? AND (time, seq) > (?, ?)"
               f" AND tier = ? AND time < {case} ORDER BY time, seq LIMIT ?")
        try:
            return self.conn.execute(sql, (max(cutoffs), after[0], after[1], tier, *params, limit)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: finding expired events failed: {exc}") from None

    def close(self) -> None:
        self.conn.close()


def store_bytes(path: str) -> int:
    """Bytes on disk of a store file and its WAL."""
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


class _CursorFileStore:
    """A forwarder cursor in a file under data_dir/forwarders (collector/forward/cursor.py), with
    the file format of one chain: {"seq": N}."""

    def __init__(self, file: Any):
        self.file = file

    def load(self) -> Cursor:
        seq = self.file.load()
        return {CHAIN: seq} if seq else {}

    def save(self, cursor: Cursor) -> None:
        self.file.save(cursor.get(CHAIN, 0))


class _LocalLease:
    """One collector owns an SQLite store, so it always holds every forwarder's lease."""

    def held(self) -> bool:
        return True

    def release(self) -> None:
        return None


class SqliteBackend:
    """The embedded store under data_dir (collector.store.Backend)."""

    def __init__(self, data_dir: str | os.PathLike, path: str = "events.db", synchronous: str = "full",
                 collector: str = ""):
        self.data_dir = pathlib.Path(data_dir)
        self.location = str(self.data_dir / path)
        self.writer = SqliteStore(self.location, synchronous, collector=collector)

    @property
    def created(self) -> bool:
        return self.writer.created

    def reader(self) -> SqliteReader:
        return SqliteReader(self.location)

    def cursor_store(self, forwarder: str) -> _CursorFileStore:
        from collector.forward.cursor import CursorFile  # the file format lives with the forwarders
        return _CursorFileStore(CursorFile(self.data_dir / "forwarders", forwarder))

    def lease(self, forwarder: str) -> _LocalLease:
        return _LocalLease()

    def close(self) -> None:
        self.writer.close()
