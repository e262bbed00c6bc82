"""Retention on PostgreSQL: an expired day of a tier goes as a whole partition (DROP TABLE, in
milliseconds whatever it holds) instead of row by row.

A day partition may go when every event in it has expired: its end is at or before the cutoff of
every namespace present in it (per-namespace overrides keep working: a day that still holds a
namespace kept longer stays, and that namespace's neighbours are deleted row by row instead).

What a drop leaves, per chain (the tamper evidence of docs/tamper-evidence.md, as a row purge
leaves it): the link of every dropped event whose successor in its chain stays (an anchor), and
the purge record — seq ranges and the anchors' digest — that the caller stores as a purge event.
Dropping also removes the partition's keys from the exactly-once ledger, as a row delete frees
the key in SQLite.

One collector at a time purges: the others find the advisory lock taken and skip the run. The
DROP takes a short exclusive lock on the tier's table; `lock_timeout` bounds how long ingest can
queue behind it (the drop is retried at the next purge).
"""

from __future__ import annotations

import psycopg

from collector.store import DeleteResult, anchors_digest, pg_schema

LOCK_TIMEOUT = "2s"


def _droppable(conn: psycopg.Connection, table: str, end: int, default: int | None,
               overrides: dict[str, int | None]) -> bool:
    """True when every event of the partition [.., end) has expired for its namespace."""
    ok = {ns for ns, cutoff in overrides.items() if cutoff is not None and end <= cutoff}
    if default is not None and end <= default:
        blockers = [ns for ns in overrides if ns not in ok]
        if not blockers:
            return True
        return not conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE namespace = ANY(%s))",
                                (blockers,)).fetchone()[0]
    if not ok:
        return False
    return not conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE namespace <> ALL(%s))",
                            (sorted(ok),)).fetchone()[0]


def _record(conn: psycopg.Connection, table: str) -> dict[str, DeleteResult]:
    """Per chain: count, time range, namespaces, seq ranges and anchors of the partition's events."""
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
    # The link of each run's last event: its successor is not in this partition.
    for chain, seq, link in conn.execute(
            f"SELECT p.chain, p.seq, p.hash FROM {table} p WHERE NOT EXISTS"
            f" (SELECT 1 FROM {table} q WHERE q.chain = p.chain AND q.seq = p.seq + 1) ORDER BY 1, 2"):
        out[chain].anchors.append((seq, bytes(link)))
    return out


def drop_expired(conn: psycopg.Connection, tier: str, default: int | None,
                 overrides: dict[str, int | None]) -> dict[str, DeleteResult] | None:
    """Drop the expired day partitions of `tier` (an autocommit connection). Returns
    {chain: DeleteResult} summed over what was dropped, or None when another collector purges."""
    if not conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                        (pg_schema.LOCK_SPACE, pg_schema.LOCK_PURGE)).fetchone()[0]:
        return None
    results: dict[str, DeleteResult] = {}
    try:
        for part_tier, start in sorted(pg_schema.existing_partitions(conn)):
            end = start + pg_schema.DAY_US
            table = pg_schema.partition_name(part_tier, start)
            if part_tier != tier or not _droppable(conn, table, end, default, overrides):
                continue
            with conn.transaction():
                record = _record(conn, table)
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO chain_anchors(chain, seq, link) VALUES (%s, %s, %s)"
                                    " ON CONFLICT DO NOTHING",
                                    [(chain, seq, link) for chain, r in record.items() for seq, link in r.anchors])
                conn.execute(f"DELETE FROM event_keys k USING {table} e WHERE k.origin = e.origin AND k.pos = e.pos")
                conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                conn.execute(f"DROP TABLE {table}")
            for chain, part in record.items():
                total = results.setdefault(chain, DeleteResult())
                total.count += part.count
                total.oldest_us = part.oldest_us if total.oldest_us is None else min(total.oldest_us, part.oldest_us)
                total.newest_us = part.newest_us if total.newest_us is None else max(total.newest_us, part.newest_us)
                total.ranges.extend(part.ranges)
                total.anchors.extend(part.anchors)
                for namespace, n in part.namespaces.items():
                    total.namespaces[namespace] = total.namespaces.get(namespace, 0) + n
        for total in results.values():
            total.ranges.sort()
            total.anchors_sha256 = anchors_digest(total.anchors)
        return results
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (pg_schema.LOCK_SPACE, pg_schema.LOCK_PURGE))
