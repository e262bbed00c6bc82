"""The embedded SQLite event store.

One writer thread owns the write connection (`SqliteStore`); readers open their own connections
(`SqliteReader`), which WAL lets run beside the writer. `store_batch` dedups, assigns gapless seqs,
extends the hash chain and inserts events plus their full-text rows, all in one transaction.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from collector.store import EVENT_COLUMNS, IncomingEvents, StoreResult
from collector.store.schema import create_schema
from common import chain
from common.errors import StorageError
from common.ids import event_id

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


@dataclass
class DeleteResult:
    count: int = 0
    oldest_us: int | None = None
    newest_us: int | None = None
    ranges: list[tuple[int, int]] = field(default_factory=list)   # inclusive seq ranges
    anchors_sha256: str = ""
    anchors: list[tuple[int, bytes]] = field(default_factory=list)  # (seq, link) kept in chain_anchors
    namespaces: dict[str, int] = field(default_factory=dict)        # deleted events per namespace


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for seq in seqs:
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def anchors_digest(anchors: Sequence[tuple[int, bytes]]) -> str:
    """SHA-256 over (seq as 8 bytes big-endian || link) of each anchor, in seq order: recorded in
    the (chained) purge event so a verifier can tell anchors the collector wrote from forged ones."""
    h = hashlib.sha256()
    for seq, link in sorted(anchors):
        h.update(seq.to_bytes(8, "big") + link)
    return h.hexdigest()


def row_to_event(row: Sequence[Any]) -> dict[str, Any]:
    """A stored row (EVENT_COLUMNS order) as the stored-value dict the chain hashes."""
    return dict(zip(EVENT_COLUMNS, row))


class SqliteStore:
    """The write side. Not thread-safe: call it from one thread (the collector's writer)."""

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
        # Set by the collector's signer: (conn, new event rows, last checkpoint seq) -> new last
        # checkpoint seq; called inside the transaction so checkpoints commit with their events.
        self.checkpointer: Callable[[sqlite3.Connection, list[tuple], int], int] | None = None
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
                # Positions taken earlier in this transaction: the same events may come twice in
                # one group (an agent re-sending on a new stream what the old one had queued, or
                # a peer doing it on purpose), and the second copy is a duplicate, not a failure
                # of the whole group on the unique index.
                taken: dict[int, set[int]] = {}
                for incoming in batches:
                    result, seq = self._rows_for(incoming, received_at_us, seq, event_rows, taken)
                    results.append(result)
                if event_rows:
                    # Inside the transaction: no acknowledged event is ever unchained.
                    head = chain.link_rows(head, event_rows, _CHAIN_COLUMNS, _HASH_COLUMN)
                    self.conn.executemany(_INSERT_EVENT, event_rows)
                    self.conn.executemany(_INSERT_FTS, ((row[0], row[_MESSAGE_COLUMN]) for row in event_rows))
                    self.conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                          (("last_seq", str(seq)), ("chain_head", head.hex())))
                    if self.checkpointer is not None:
                        checkpoint_seq = self.checkpointer(self.conn, event_rows, checkpoint_seq)
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._origins = origins_before
                # `from exc`: the writer reads sqlite_errorname, and waits out a full disk.
                raise StorageError(f"{self.path}: storing a batch failed: {exc}") from exc
            except BaseException:
                # A value the chain cannot encode (or any other surprise) must not leave the
                # transaction open: every later batch would fail to BEGIN.
                self._rollback()
                self._origins = origins_before
                raise
            self.last_seq, self.chain_head, self.last_checkpoint_seq = seq, head, checkpoint_seq
            return results

    def _rows_for(self, incoming: IncomingEvents, received_at: int, seq: int,
                  out: list[list], taken: dict[int, set[int]]) -> tuple[StoreResult, int]:
        """Append the new events of one chunk to `out` as rows (_ROW_COLUMNS, hash still None)."""
        result = StoreResult()
        count = len(incoming)
        if count == 0:
            return result, seq
        host = incoming.host
        origin = self._origin_id(host, incoming.source_key)
        positions = incoming.position
        low, high = min(positions), max(positions)
        seen = taken.setdefault(origin, set())
        seen.update(pos for (pos,) in self.conn.execute(
            "SELECT pos FROM events WHERE origin = ? AND pos BETWEEN ? AND ?", (origin, low, high)))
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

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction was open: nothing to undo

    def last_checkpoint_time(self) -> float:
        """Unix seconds of the newest signed checkpoint; 0 when none was signed yet."""
        row = self.conn.execute("SELECT max(time) FROM checkpoints").fetchone()
        return (row[0] or 0) / 1e6

    def storage_bytes(self) -> int:
        return sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))

    def close(self) -> None:
        with self._lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # a busy reader keeps the WAL; it is checkpointed on next open
            self.conn.close()


class SqliteReader:
    """A read-only view for searches; one per thread (connections are cheap, WAL-concurrent)."""

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
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the event store for reading: {exc}") from None

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
        row = self.conn.execute(sql, tuple(params)).fetchone()
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
