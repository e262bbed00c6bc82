"""Migration of a single-file store (schema 1: events in events.db) to time partitions
(docs/storage-model.md §5).

The old file becomes the partition `partitions/legacy.db` as it is — events, links and full-text
index unchanged, nothing copied event by event — and a new main file takes its meta, origins,
anchors, checkpoints and keys. The writer then converts that partition's rows to blocks like any
row-model partition (sqlite_convert.py). Crash-safe: the new main file is built as `events.db.migrating`
and renamed into place after the old file has moved; an interrupted migration restarts or
finishes at the next open.
"""

from __future__ import annotations

import logging
import os
import sqlite3

from fleetlog.collector.store.partitions import (
    LEGACY_NAME,
    LEGACY_TIER,
    partition_path,
    remove_partition_file,
)
from fleetlog.collector.store.schema import CARRIED_TABLES, create_main_schema
from fleetlog.common.errors import StorageError

log = logging.getLogger("fleetlog.collector.store")


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def migrate_single_file(path: str) -> bool:
    """Migrate `path` when it is a single-file store; True when a migration finished here."""
    building = path + ".migrating"
    legacy = partition_path(path, LEGACY_NAME)
    if not os.path.exists(path) and os.path.exists(building) and legacy.exists():
        os.replace(building, path)          # the old file had moved: only the last step was missing
        _fsync_dir(path)
        log.warning("%s: finished the migration to time partitions that a stop interrupted", path)
        return True
    if os.path.exists(building):
        remove_partition_file(building)     # an interrupted build: start again from the old file
    if not os.path.exists(path):
        return False
    try:
        old = sqlite3.connect(path, isolation_level=None)
        try:
            tables = {name for (name,) in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "events" not in tables or "partitions" in tables:
                return False
            old.execute("PRAGMA wal_checkpoint(TRUNCATE)")   # everything into the file that moves
            count, min_seq, max_seq, min_time, max_time = old.execute(
                "SELECT count(*), min(seq), max(seq), min(time), max(time) FROM events").fetchone()
        finally:
            old.close()
        log.warning("%s: migrating a single-file store of %d events to time partitions: it becomes the "
                    "partition %s, unchanged; new events go to daily partitions", path, count, legacy)
        _build_main(path, building, count, min_seq, max_seq, min_time, max_time)
        legacy.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)    # empty after the checkpoint; never pair a WAL with another file
        os.replace(path, legacy)
        _fsync_dir(str(legacy))
        os.replace(building, path)
        _fsync_dir(path)
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"{path}: migrating the single-file store to partitions failed: {exc}") from None
    log.warning("%s: migration finished (%d events kept in partition %s)", path, count, LEGACY_NAME)
    return True


def _build_main(path: str, building: str, count: int, min_seq: int | None, max_seq: int | None,
                min_time: int | None, max_time: int | None) -> None:
    conn = sqlite3.connect(building, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        create_main_schema(conn)
        conn.execute("ATTACH DATABASE ? AS old", (f"file:{path}?mode=ro",))
        conn.execute("BEGIN IMMEDIATE")
        old_tables = {name for (name,) in conn.execute("SELECT name FROM old.sqlite_master WHERE type = 'table'")}
        for table in CARRIED_TABLES:
            if table in old_tables:
                columns = [row[1] for row in conn.execute(f"PRAGMA old.table_info({table})")]
                names = ", ".join(columns)
                conn.execute(f"INSERT OR REPLACE INTO main.{table}({names}) SELECT {names} FROM old.{table}")
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '2')")
        if count:
            assert max_time is not None     # events have times
            part = conn.execute(
                "INSERT INTO partitions(name, tier, period_start, period_end, min_seq, max_seq, min_time, max_time,"
                " count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (LEGACY_NAME, LEGACY_TIER, min_time, max_time + 1, min_seq, max_seq, min_time, max_time,
                 count)).fetchone()[0]
            conn.execute("INSERT INTO partition_origins(part, origin, min_pos, max_pos)"
                         " SELECT ?, origin, min(pos), max(pos) FROM old.events GROUP BY origin", (part,))
            conn.execute("INSERT INTO partition_namespaces(part, namespace, count)"
                         " SELECT ?, namespace, count(*) FROM old.events GROUP BY namespace", (part,))
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE old")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    fd = os.open(building, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
