"""Retention on PostgreSQL: an expired day of a tier goes as a whole partition (DROP TABLE, in
milliseconds whatever it holds) instead of row by row (docs/storage-model.md §3).

The steps of collector/retention.py, in PostgreSQL's terms:
1. `droppable` (reader): the day partitions of a tier whose every event has expired — the day's
   end is at or before the cutoff of every namespace present in it (a namespace kept longer
   keeps its day; one kept shorter is deleted row by row by the caller).
2. `scan` (reader): what a partition holds, per chain: count, time span, namespaces, seq ranges
   and anchors (the link of every dropped seq whose successor in its chain stays). A cluster's
   partition holds every collector's chain: the own chain's part is the result, the other
   chains' parts are in its `other_chains`, and the caller records a purge event for each of
   them in its own chain, naming the chain it covers.
3. `drop` (writer), in ONE transaction: the anchors of every chain, the keys of the dropped
   events removed from the exactly-once ledger (as a row delete frees its key in SQLite), DROP
   TABLE, the purge events, the purge journal cleared. A partition that grew since it was
   scanned (a late event) is kept for the next purge.

One collector at a time drops: a transaction-level advisory lock; a collector that does not get
it drops nothing this time (it still records what its row deletes removed). The DROP takes a
short exclusive lock on the tier's table; `lock_timeout` bounds how long ingest can queue behind
it (the partition is then dropped at the next purge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from fleetlog.collector.store import DeleteResult, anchors_digest, pg_schema
from fleetlog.collector.store.pg_dsn import scalar

LOCK_TIMEOUT = "2s"


@dataclass
class PgPartition:
    """A day partition as retention sees it. `max_seq` is the growth guard the interface names:
    here the partition's row count when scanned (rows of several chains have no common seq)."""

    name: str
    tier: str
    max_seq: int
    count: int


def _droppable(conn: psycopg.Connection, table: str, end: int, default: int | None,
               overrides: dict[str, int | None]) -> bool:
    """True when every event of the partition [.., end) has expired for its namespace."""
    ok = {ns for ns, cutoff in overrides.items() if cutoff is not None and end <= cutoff}
    if default is not None and end <= default:
        blockers = [ns for ns in overrides if ns not in ok]
        if not blockers:
            return True
        return not scalar(conn, f"SELECT EXISTS (SELECT 1 FROM {table} WHERE namespace = ANY(%s))",
                          (blockers,))
    if not ok:
        return False
    return not scalar(conn, f"SELECT EXISTS (SELECT 1 FROM {table} WHERE namespace <> ALL(%s))",
                      (sorted(ok),))


def droppable(conn: psycopg.Connection, tier: str, default: int | None,
              overrides: dict[str, int | None]) -> list[PgPartition]:
    found = []
    for part_tier, start in sorted(pg_schema.existing_partitions(conn)):
        table = pg_schema.partition_name(part_tier, start)
        if part_tier == tier and _droppable(conn, table, start + pg_schema.DAY_US, default, overrides):
            count = scalar(conn, f"SELECT count(*) FROM {table}")
            found.append(PgPartition(table, tier, count, count))
    return found


def scan(conn: psycopg.Connection, table: str, own_chain: str) -> DeleteResult:
    """What dropping `table` removes: the own chain's part, the other chains' in other_chains."""
    out: dict[str, DeleteResult] = {}
    for chain, count, oldest, newest in conn.execute(
            f"SELECT chain, count(*), min(time), max(time) FROM {table} GROUP BY chain"):
        out[chain] = DeleteResult(count=count, oldest_us=oldest, newest_us=newest)
    for chain, namespace, count in conn.execute(f"SELECT chain, namespace, count(*) FROM {table} GROUP BY 1, 2"):
        out[chain].namespaces[namespace] = count
    # Gaps and islands: consecutive seqs share seq - row_number().
    for chain, low, high in conn.execute(
            f"SELECT chain, min(seq), max(seq) FROM (SELECT chain, seq, seq - row_number() OVER"
            f" (PARTITION BY chain ORDER BY seq) AS island FROM {table}) runs GROUP BY chain, island ORDER BY 1, 2"):
        out[chain].ranges.append((low, high))
    for chain, seq, link in conn.execute(_ANCHORS.format(table=table) + " ORDER BY 1, 2"):
        out[chain].anchors.append((seq, bytes(link)))
    for result in out.values():
        result.anchors_sha256 = anchors_digest(result.anchors)
    own = out.pop(own_chain, None) or DeleteResult()
    own.other_chains = out
    return own


# The link of each run's last event: its successor is not in this partition.
_ANCHORS = ("SELECT p.chain, p.seq, p.hash FROM {table} p WHERE NOT EXISTS"
            " (SELECT 1 FROM {table} q WHERE q.chain = p.chain AND q.seq = p.seq + 1)")


def drop(conn: psycopg.Connection, own_chain: str, tier: str, expected: dict[str, int],
         store_record: Callable[[list[PgPartition]], None]) -> list[PgPartition]:
    """Drop the partitions of `expected` (name -> row count when scanned) that are unchanged, and
    store_record(dropped) in the same transaction (an autocommit connection)."""
    dropped: list[PgPartition] = []
    with conn.transaction():
        locked = bool(expected) and scalar(
            conn, "SELECT pg_try_advisory_xact_lock(%s, %s)", (pg_schema.LOCK_SPACE, pg_schema.LOCK_PURGE))
        if locked:
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            for name, count in sorted(expected.items()):
                if pg_schema.parse_partition_name(name) is None:
                    continue   # not a day partition of ours: never drop it by name
                if not scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (name,)):
                    continue   # another collector dropped it already
                conn.execute(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
                if scalar(conn, f"SELECT count(*) FROM {name}") != count:
                    continue   # a late event arrived since the scan: next purge
                conn.execute(f"INSERT INTO chain_anchors(chain, seq, link) {_ANCHORS.format(table=name)}"
                             " ON CONFLICT DO NOTHING")
                conn.execute(f"DELETE FROM event_keys k USING {name} e WHERE k.origin = e.origin AND k.pos = e.pos")
                conn.execute(f"DROP TABLE {name}")
                dropped.append(PgPartition(name, tier, count, count))
        store_record(dropped)
        conn.execute("DELETE FROM purge_journal WHERE chain = %s AND tier = %s", (own_chain, tier))
    return dropped
