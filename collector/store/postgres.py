"""The PostgreSQL event store: one more backend behind collector/store (contract §7).

Several collectors share one database. Each appends to its own chain (chain = its node_name): a
gapless seq and hash links that only this collector extends, so no sequence is shared across
collectors and consumers read with a cursor per chain (docs/storage-model.md).

`store_batch`, in one transaction:
1. lock this collector's row of `chains` (its seq and head come from the database, never only
   from memory, so an unknown commit outcome after a lost connection cannot fork the chain);
2. claim the events' keys in the ledger `event_keys`, in (origin, pos) order so two collectors
   claiming overlapping batches wait for each other instead of deadlocking; only the keys this
   transaction won become events. The fast way looks the batch's position ranges up and COPYs
   the new keys; if another collector claimed some of them meanwhile, the primary key refuses
   the COPY (after waiting for that collector's commit), and the batch is stored again with
   INSERT ... ON CONFLICT DO NOTHING RETURNING, which settles every key one by one;
3. number and link them, COPY them into the partitioned `events`, sign checkpoints, move the
   chain row; COMMIT. Only then is the batch acknowledged.
Origins and the day partitions the batch needs are created before, in their own short
transactions: they are harmless when the batch then fails, and keeping them out of the batch's
transaction keeps its lock order simple.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg

from fleetlog.collector.store import (
    ROW_COLUMNS,
    Checkpointer,
    CheckpointRow,
    DeleteResult,
    IncomingEvents,
    StoreResult,
    anchors_digest,
    pg_retention,
    pg_schema,
)
from fleetlog.collector.store.pg_dsn import CONNECT_TIMEOUT, mask_dsn, one_row, scalar
from fleetlog.common import chain
from fleetlog.common.errors import StorageError
from fleetlog.common.ids import event_ids_of
from fleetlog.common.timefmt import now_us

log = logging.getLogger("fleetlog.collector.store.postgres")

T = TypeVar("T")

# The writer's row (collector.store.ROW_COLUMNS), then the chain's name for COPY.
_CHAIN_COLUMNS = tuple(ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS)
_HASH_COLUMN = ROW_COLUMNS.index("hash")
_TIME_COLUMN = ROW_COLUMNS.index("time")
_TIER_COLUMN = ROW_COLUMNS.index("tier")
_COPY_EVENTS = "COPY events ({}) FROM STDIN".format(", ".join(['"user"' if c == "user" else c
                                                                for c in ("chain", *ROW_COLUMNS)]))


def _merge(total: DeleteResult, part: DeleteResult) -> None:
    if part.oldest_us is None or part.newest_us is None:
        return   # the partition held no event of this chain
    total.count += part.count
    total.oldest_us = part.oldest_us if total.oldest_us is None else min(total.oldest_us, part.oldest_us)
    total.newest_us = part.newest_us if total.newest_us is None else max(total.newest_us, part.newest_us)
    total.ranges = sorted(total.ranges + part.ranges)
    total.anchors = sorted(total.anchors + part.anchors)
    for namespace, n in part.namespaces.items():
        total.namespaces[namespace] = total.namespaces.get(namespace, 0) + n


def connect(dsn: str, autocommit: bool = True) -> psycopg.Connection:
    """A connection, or StorageError with libpq's reason in one line."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise StorageError(f"cannot reach the database at {mask_dsn(dsn)}: {_first_line(exc)}") from None


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """psycopg's errors become StorageError (one line) at this boundary."""
    try:
        yield
    except psycopg.Error as exc:
        raise StorageError(f"{what}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class PostgresStore:
    """The write side of one collector. Not thread-safe: the collector's writer thread calls it."""

    def __init__(self, dsn: str, collector: str):
        if not collector:
            raise StorageError("a PostgreSQL store needs the collector's node_name (its chain)")
        self.dsn = dsn
        self.chain = collector
        self.collector = collector
        self.conn = connect(dsn)
        pg_schema.migrate(self.conn, collector)
        self.created = False
        self._origins: dict[tuple[str, str], int] = {}
        self._addresses: set[tuple[str, str]] = set()
        self._partitions: set[tuple[str, int]] = set()
        self.checkpointer: Checkpointer | None = None
        # Told when the database stops answering (the backend's health; see postgres_backend).
        self.on_down: Callable[[], None] | None = None
        self.size_bytes = 0
        self._lock = threading.Lock()
        self._run(self._load)

    # -- connection handling ------------------------------------------------------------------

    def _run(self, fn: Callable[[], T], what: str = "the event store") -> T:
        """Run fn on a live connection; a lost connection is reopened on the next call, and its
        error comes back as StorageError (the batch is not acknowledged; the agent re-sends)."""
        try:
            if self.conn.closed:
                self.conn = connect(self.dsn)
                # The last transaction's outcome may be unknown (the connection broke during
                # COMMIT): take the chain's state as the database has it.
                self.last_seq, head, self.last_checkpoint_seq = one_row(
                    self.conn, "SELECT last_seq, head, last_checkpoint_seq FROM chains WHERE chain = %s", (self.chain,))
                self.chain_head = bytes(head)
            return fn()
        except StorageError:
            if self.on_down is not None:
                self.on_down()
            raise
        except psycopg.Error as exc:
            if self.conn.closed or isinstance(exc, psycopg.OperationalError):
                try:
                    self.conn.close()
                except psycopg.Error:
                    pass   # already gone
                if self.on_down is not None:
                    self.on_down()
            raise StorageError(f"{what} ({mask_dsn(self.dsn)}): {_first_line(exc)}") from None

    def _load(self) -> None:
        now = now_us()
        row = self.conn.execute(
            "INSERT INTO chains(chain, head, created_at) VALUES (%s, %s, %s) ON CONFLICT (chain) DO NOTHING"
            " RETURNING chain", (self.chain, chain.GENESIS, now)).fetchone()
        self.created = row is not None
        self.last_seq, self.chain_head, self.last_checkpoint_seq = one_row(
            self.conn, "SELECT last_seq, head, last_checkpoint_seq FROM chains WHERE chain = %s", (self.chain,))
        self.chain_head = bytes(self.chain_head)
        self._origins = {(host, key): oid for oid, host, key in self.conn.execute(
            "SELECT id, host, source_key FROM origins")}
        self._addresses = {(h, ip) for h, ip in self.conn.execute("SELECT host, ip FROM node_addresses")}
        self._partitions = pg_schema.create_partitions(self.conn, pg_schema.days_ahead(now))

    def ensure_partitions(self, wanted: set[tuple[str, int]]) -> None:
        missing = wanted - self._partitions
        if missing:
            self._partitions = pg_schema.create_partitions(self.conn, missing)

    def _origin_id(self, host: str, source_key: str) -> int:
        key = (host, source_key)
        oid = self._origins.get(key)
        if oid is None:
            # Autocommit, outside the batch: another collector may add the same origin at once.
            self.conn.execute("INSERT INTO origins(host, source_key) VALUES (%s, %s) ON CONFLICT DO NOTHING", key)
            oid = scalar(self.conn, "SELECT id FROM origins WHERE host = %s AND source_key = %s", key)
            self._origins[key] = oid
        return oid

    # -- the write path -----------------------------------------------------------------------

    def store_batch(self, batches: Sequence[IncomingEvents], received_at_us: int) -> list[StoreResult]:
        """Store every new event of `batches` in one transaction (see the module docstring)."""
        with self._lock:
            return self._run(lambda: self._store_claiming(batches, received_at_us), "storing a batch failed")

    def _store_claiming(self, batches: Sequence[IncomingEvents], received_at: int) -> list[StoreResult]:
        """Claim keys the fast way (look up, then COPY); when another collector claimed some of
        the same keys meanwhile, the unique key refuses the COPY and the batch is stored again
        the careful way (ON CONFLICT), so exactly-once never depends on the look-up."""
        try:
            return self._store(batches, received_at, optimistic=True)
        except psycopg.errors.UniqueViolation:
            return self._store(batches, received_at, optimistic=False)

    def _claim(self, keys: list[tuple[int, int]], optimistic: bool) -> set[tuple[int, int]]:
        """Insert the keys not yet in the ledger, in (origin, pos) order; returns those inserted."""
        if not optimistic:
            return {(o, p) for o, p in self.conn.execute(
                "INSERT INTO event_keys(origin, pos) SELECT o, p FROM unnest(%s::bigint[], %s::bigint[]) AS k(o, p)"
                " ORDER BY o, p ON CONFLICT DO NOTHING RETURNING origin, pos",
                ([k[0] for k in keys], [k[1] for k in keys]))}
        # Positions grow per source, so one index range per origin finds what is stored already.
        spans: dict[int, list[int]] = {}
        for origin, pos in keys:
            span = spans.setdefault(origin, [pos, pos])
            span[1] = max(span[1], pos)
        taken = {(o, p) for o, p in self.conn.execute(
            "SELECT k.origin, k.pos FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS r(o, lo, hi)"
            " JOIN event_keys k ON k.origin = r.o AND k.pos BETWEEN r.lo AND r.hi",
            (list(spans), [v[0] for v in spans.values()], [v[1] for v in spans.values()]))}
        new = [k for k in keys if k not in taken]
        if new:
            with self.conn.cursor().copy("COPY event_keys(origin, pos) FROM STDIN") as copy:
                for key in new:
                    copy.write_row(key)
        return set(new)

    def _store(self, batches: Sequence[IncomingEvents], received_at: int, optimistic: bool) -> list[StoreResult]:
        # Before the transaction: origins, node addresses and the partitions the events need.
        origins = [self._origin_id(b.host, b.source_key) if len(b) else 0 for b in batches]
        days: set[tuple[str, int]] = set()
        for incoming in batches:
            if incoming.host_ip and (incoming.host, incoming.host_ip) not in self._addresses:
                self.conn.execute("INSERT INTO node_addresses(host, ip) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                  (incoming.host, incoming.host_ip))
                self._addresses.add((incoming.host, incoming.host_ip))
            for tier, time_us in zip(incoming.tier, incoming.time_us):
                if tier != "permanent":
                    days.add((tier, pg_schema.day_start(time_us)))
        # Days ahead too, so the partitions of tomorrow exist before its first event (a set
        # difference per batch; the DDL runs once a day).
        self.ensure_partitions(days | pg_schema.days_ahead(received_at))

        # Candidates: each (origin, pos) once per call; repeats inside the call are duplicates.
        candidates: dict[tuple[int, int], tuple[int, int]] = {}   # key -> (batch index, event index)
        for b, incoming in enumerate(batches):
            origin = origins[b]
            for i, pos in enumerate(incoming.position):
                candidates.setdefault((origin, pos), (b, i))
        keys = sorted(candidates)
        with self.conn.transaction():
            last_seq, head, checkpoint_seq = one_row(
                self.conn, "SELECT last_seq, head, last_checkpoint_seq FROM chains WHERE chain = %s FOR UPDATE",
                (self.chain,))
            head = bytes(head)
            won = self._claim(keys, optimistic) if keys else set()
            results, rows, seq = self._rows(batches, origins, won, candidates, received_at, last_seq)
            checkpoints: list[CheckpointRow] = []
            if rows:
                head = chain.link_rows(head, rows, _CHAIN_COLUMNS, _HASH_COLUMN)
                with self.conn.cursor().copy(_COPY_EVENTS) as copy:
                    name = self.chain
                    for row in rows:
                        copy.write_row((name, *row))
                if self.checkpointer is not None:
                    checkpoints = self.checkpointer(rows[0][0], [row[_HASH_COLUMN] for row in rows], checkpoint_seq)
                    self._insert_checkpoints(checkpoints)
                    checkpoint_seq = max([checkpoint_seq, *(cp[0] for cp in checkpoints)])
                self.conn.execute("UPDATE chains SET last_seq = %s, head = %s, last_checkpoint_seq = %s"
                                  " WHERE chain = %s", (seq, head, checkpoint_seq, self.chain))
        self.last_seq, self.chain_head, self.last_checkpoint_seq = seq, head, checkpoint_seq
        return results

    def _rows(self, batches: Sequence[IncomingEvents], origins: list[int], won: set[tuple[int, int]],
              candidates: dict[tuple[int, int], tuple[int, int]], received_at: int,
              seq: int) -> tuple[list[StoreResult], list[list[Any]], int]:
        results = []
        rows: list[list[Any]] = []
        collector = self.collector
        for b, incoming in enumerate(batches):
            result = StoreResult()
            results.append(result)
            if not len(incoming):
                continue
            origin, host, source_key = origins[b], incoming.host, incoming.source_key
            host_ip = incoming.host_ip or None
            event_id = event_ids_of(host, source_key)
            first = seq + 1
            for i, pos in enumerate(incoming.position):
                key = (origin, pos)
                if key not in won or candidates[key] != (b, i):
                    result.duplicates += 1
                    continue
                seq += 1
                rows.append([seq, origin, pos, event_id(pos), incoming.time_us[i], received_at,
                             host, host_ip, collector, incoming.namespace, incoming.source, incoming.log_type,
                             incoming.app[i] or None, incoming.pid[i] or None, incoming.level[i],
                             incoming.request_id[i] or None, incoming.user[i] or None, incoming.action[i] or None,
                             incoming.message[i], incoming.fields_json[i] or None, incoming.tier[i],
                             incoming.flags[i] & 1, None])
            result.stored = seq - first + 1
            if result.stored:
                result.first_seq, result.last_seq = first, seq
            result.stored_by_host[host] = result.stored
            result.duplicates_by_host[host] = result.duplicates
        return results, rows, seq

    def _insert_checkpoints(self, checkpoints: list[CheckpointRow]) -> None:
        if checkpoints:
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO checkpoints(chain, seq, key_id, collector, chain_hash, time, signature)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (chain, seq, key_id) DO UPDATE SET"
                    " collector = EXCLUDED.collector, chain_hash = EXCLUDED.chain_hash, time = EXCLUDED.time,"
                    " signature = EXCLUDED.signature", [(self.chain, *cp) for cp in checkpoints])

    def add_checkpoint(self, checkpoint: CheckpointRow) -> None:
        """Store one checkpoint of this chain's head (seq, key_id, collector, chain_hash, time, signature)."""
        with self._lock:
            def write() -> None:
                with self.conn.transaction():
                    self._insert_checkpoints([checkpoint])
                    self.conn.execute("UPDATE chains SET last_checkpoint_seq = greatest(last_checkpoint_seq, %s)"
                                      " WHERE chain = %s", (checkpoint[0], self.chain))
            self._run(write, "writing a checkpoint failed")
        self.last_checkpoint_seq = max(self.last_checkpoint_seq, checkpoint[0])

    # -- signing keys and checkpoints (per chain) -------------------------------------------

    def newest_signing_key(self) -> tuple[str, str] | None:
        row = self._query("SELECT key_id, public_key FROM signing_keys WHERE chain = %s"
                          " ORDER BY first_seq DESC, added_at DESC LIMIT 1", (self.chain,))
        return (row[0][0], row[0][1]) if row else None

    def add_signing_key(self, key_id: str, public_pem: str, first_seq: int, added_at_us: int) -> None:
        with self._lock:
            self._run(lambda: self.conn.execute(
                "INSERT INTO signing_keys(chain, key_id, public_key, first_seq, added_at) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (chain, key_id) DO UPDATE SET public_key = EXCLUDED.public_key,"
                " first_seq = EXCLUDED.first_seq, added_at = EXCLUDED.added_at",
                (self.chain, key_id, public_pem, first_seq, added_at_us)), "recording the signing key failed")

    def latest_checkpoint(self, prefer_key_id: str) -> CheckpointRow | None:
        rows = self._query("SELECT seq, key_id, collector, chain_hash, time, signature FROM checkpoints"
                           " WHERE chain = %s ORDER BY seq DESC, key_id = %s DESC LIMIT 1", (self.chain, prefer_key_id))
        return tuple(rows[0]) if rows else None

    def chain_of(self, event: dict[str, Any]) -> str:
        """One chain per collector: the collector that stored the event."""
        return event.get("collector") or self.chain

    def last_checkpoint_time(self) -> float:
        """Unix seconds of this chain's newest signed checkpoint; 0 when none was signed yet."""
        rows = self._query("SELECT max(time) FROM checkpoints WHERE chain = %s", (self.chain,))
        return ((rows[0][0] if rows else None) or 0) / 1e6

    def public_keys(self, first_key_id: str) -> list[str]:
        return [pem for (pem,) in self._query(
            "SELECT public_key FROM signing_keys WHERE chain = %s ORDER BY key_id = %s DESC, first_seq DESC",
            (self.chain, first_key_id))]

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._run(lambda: self.conn.execute(sql, params).fetchall(), "reading the store failed")

    # -- retention ------------------------------------------------------------------------------

    def delete_events(self, seqs: Sequence[int],
                      journal: Callable[[DeleteResult], tuple[str, str]] | None = None) -> DeleteResult:
        """Delete events of this chain by seq in one short transaction, keeping the rest
        verifiable: the link of every deleted seq whose successor stays is kept as an anchor;
        `journal(result)` -> (tier, state) is stored with them (see pending_purges)."""
        result = DeleteResult()
        if not seqs:
            return result
        wanted = sorted(set(seqs))

        def delete() -> None:
            with self.conn.transaction():
                rows = self.conn.execute(
                    "DELETE FROM events WHERE chain = %s AND seq = ANY(%s)"
                    " RETURNING seq, time, hash, namespace, origin, pos", (self.chain, wanted)).fetchall()
                if not rows:
                    return
                rows.sort()
                anchors = result.record([(seq, time_us, namespace, link)
                                         for seq, time_us, link, namespace, _, _ in rows])
                self._insert_anchors(anchors)
                self.conn.execute("DELETE FROM event_keys k USING unnest(%s::bigint[], %s::bigint[]) AS d(o, p)"
                                  " WHERE k.origin = d.o AND k.pos = d.p",
                                  ([r[4] for r in rows], [r[5] for r in rows]))
                if journal is not None:
                    tier, state = journal(result)
                    self.conn.execute("INSERT INTO purge_journal(chain, tier, state) VALUES (%s, %s, %s)"
                                      " ON CONFLICT (chain, tier) DO UPDATE SET state = EXCLUDED.state",
                                      (self.chain, tier, state))
        with self._lock:
            self._run(delete, "deleting events failed")
        return result

    def _insert_anchors(self, anchors: Sequence[tuple[int, bytes]]) -> None:
        if anchors:
            with self.conn.cursor() as cur:
                cur.executemany("INSERT INTO chain_anchors(chain, seq, link) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                                [(self.chain, seq, link) for seq, link in anchors])

    def add_anchors(self, anchors: Sequence[tuple[int, bytes]]) -> None:
        """This chain's anchors ahead of a drop (the drop writes every chain's again, atomically)."""
        with self._lock:
            self._run(lambda: self._insert_anchors(anchors), "storing chain anchors failed")

    def anchors_within(self, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, bytes]]:
        found: list[tuple[int, bytes]] = []
        for low, high in ranges:
            found += [(seq, bytes(link)) for seq, link in self._query(
                "SELECT seq, link FROM chain_anchors WHERE chain = %s AND seq BETWEEN %s AND %s ORDER BY seq",
                (self.chain, low, high))]
        return found

    def pending_purges(self) -> list[tuple[str, str]]:
        return [(tier, state) for tier, state in self._query(
            "SELECT tier, state FROM purge_journal WHERE chain = %s ORDER BY tier", (self.chain,))]

    def drop_partitions(self, tier: str, expected: dict[str, int],
                        record: Callable[[list[Any]], list[IncomingEvents]]) -> list[Any]:
        """In one transaction: drop the partitions of `expected` that did not grow since they were
        scanned (one collector of the cluster at a time), store record(dropped) — the purge
        events — and clear this chain's journal of `tier` (collector/store/pg_retention.py)."""
        def store_record(dropped: list[Any]) -> None:
            batches = record(dropped)
            if batches:
                self._store(batches, now_us(), optimistic=False)
        with self._lock:
            return self._run(lambda: pg_retention.drop(self.conn, self.chain, tier, expected, store_record),
                             "dropping expired partitions failed")

    def drop_expired(self, tier: str, default_cutoff_us: int | None,
                     namespace_cutoffs: dict[str, int | None]) -> DeleteResult:
        """Every wholly expired partition of `tier` in one call (droppable, scan, drop) without
        recording a purge event: what the retention steps do, for tests and tools. The own
        chain's part is the result, the other chains' are in its other_chains."""
        with self._lock:
            def run() -> DeleteResult:
                parts = pg_retention.droppable(self.conn, tier, default_cutoff_us, namespace_cutoffs)
                scans = {p.name: pg_retention.scan(self.conn, p.name, self.chain) for p in parts}
                dropped = pg_retention.drop(self.conn, self.chain, tier, {p.name: p.max_seq for p in parts},
                                            lambda _: None)
                total = DeleteResult()
                for part in dropped:
                    _merge(total, scans[part.name])
                    for chain, other in scans[part.name].other_chains.items():
                        _merge(total.other_chains.setdefault(chain, DeleteResult()), other)
                for result in (total, *total.other_chains.values()):
                    result.anchors_sha256 = anchors_digest(result.anchors)
                return total
            return self._run(run, "dropping expired partitions failed")

    def storage_bytes(self) -> int:
        """The database's size as last measured (the backend's heartbeat measures it): metrics
        scrapes never wait for the writer or for a database that does not answer."""
        return self.size_bytes

    def close(self) -> None:
        with self._lock:
            self.conn.close()
