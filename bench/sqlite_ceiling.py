"""What SQLite alone can store on this machine with the collector's real schema: the ceiling under
the end-to-end figure.

Rows shaped like the e2e workload's (same widths, same request_id/user spread) are built in Python
before the clock starts; the timed part is only `executemany` into `events` and `events_fts` plus
COMMIT, 20,000 rows per transaction (a full writer group), WAL, `synchronous = full`, the
writer's 64 MiB page cache. The variants drop the full-text index and the secondary indexes, to
show what each costs; the last two use the writer's own insert (the C batch insert, GIL released)
into one file, and into two files from two threads at once, as writer shards do. Everything the collector does in Python (decoding, ids, the hash chain) comes
on top of these figures.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import sqlite3
import time

from bench.common import BenchContext, Row
from fleetlog.collector.store.schema import create_partition_schema
from fleetlog.collector.store.sqlite_bulk import INSERT_EVENT as _INSERT_EVENT
from fleetlog.collector.store.sqlite_bulk import INSERT_FTS as _INSERT_FTS
from fleetlog.collector.store.sqlite_bulk import NATIVE, PartitionConnection
from fleetlog.collector.store.sqlite_util import connect

ROWS = 200_000
GROUP = 20_000
SECONDARY = ("events_time", "events_request_id", "events_user")


def _rows(count: int) -> list[tuple]:
    base = 1_764_686_245_000_000
    return [
        (i + 1, 1, i * 121, hashlib.md5(str(i).encode()).hexdigest(), base + i, base + count,
         "bench-agent", "127.0.0.1", "bench-collector", "default", "file:/var/log/app.log", "application",
         None, None, 6, f"r{i % 9973:05d}", f"user{i % 97}@example.com", None,
         (f"2025-12-02T14:30:45.{i % 1000000:06d}Z INFO req=r{i % 9973:05d} user=user{i % 97}@example.com "
          f"Authentication SUCCESS via LDAP seq={i:09d}"), f'{{"seq":"{i:09d}"}}', "general", 0,
         hashlib.sha256(str(i).encode()).digest())
        for i in range(count)]


def _insert_rate(path: str, rows: list[tuple], fts: bool, secondary: bool) -> float:
    conn = connect(path, "full")
    create_partition_schema(conn)   # a partition file: where the writer's inserts go
    if not fts:
        conn.execute("DROP TABLE events_fts")
    if not secondary:
        for index in SECONDARY:
            conn.execute(f"DROP INDEX {index}")
    started = time.perf_counter()
    for first in range(0, len(rows), GROUP):
        group = rows[first:first + GROUP]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT_EVENT, group)
        if fts:
            conn.executemany(_INSERT_FTS, [(row[0], row[18]) for row in group])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def _native_rate(paths: list[str], rows: list[tuple]) -> float:
    """The writer's own insert path (PartitionConnection: the C batch insert, GIL released), one
    thread per file, every file given all `rows`: rows/s over all files."""
    lists = [list(row) for row in rows]
    conns = []
    for path in paths:
        conn = connect(path, "full", factory=PartitionConnection)
        create_partition_schema(conn)
        conn.open_native(path, "full", 16 * 1024)
        conns.append(conn)

    def fill(conn: PartitionConnection) -> None:
        for first in range(0, len(lists), GROUP):
            conn.begin_batch()
            conn.insert_batch(lists[first:first + GROUP])
            conn.commit_batch()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(conns)) as pool:
        for future in [pool.submit(fill, conn) for conn in conns]:
            future.result()
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    return len(rows) * len(conns) / elapsed


def run(ctx: BenchContext) -> list[Row]:
    rows = _rows(ROWS)
    variants = [
        ("full partition schema (origin+pos, time/request_id/user indexes, FTS5)", True, True),
        ("without the FTS5 index", False, True),
        ("without FTS5 and the time/request_id/user indexes", False, False),
    ]
    out = []
    for n, (label, fts, secondary) in enumerate(variants):
        folder = ctx.work / f"sqlite-ceiling-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            rate = _insert_rate(str(folder / "events.db"), rows, fts, secondary)
        except sqlite3.Error as exc:
            out.append(Row(f"SQLite insert ceiling, {label}", f"failed: {exc}"))
            continue
        out.append(Row(f"SQLite insert ceiling, {label}", f"{rate:,.0f} rows/s"))
    if not NATIVE:
        out.append(Row("SQLite insert ceiling, the writer's C batch insert", "not built (make install)"))
        return out
    for files in (1, 2):
        folder = ctx.work / f"sqlite-ceiling-native-{files}"
        folder.mkdir(parents=True, exist_ok=True)
        rate = _native_rate([str(folder / f"part-{n}.db") for n in range(files)], rows)
        label = "one file" if files == 1 else f"{files} files by {files} threads at once (writer shards)"
        out.append(Row(f"SQLite insert ceiling, full schema, the writer's C batch insert (GIL released), {label}",
                       f"{rate:,.0f} rows/s"))
    return out
