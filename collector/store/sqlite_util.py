"""Small pieces the SQLite store's writer, readers and migration share."""

from __future__ import annotations

import os
import sqlite3

from fleetlog.collector.store.partitions import partition_dir
from fleetlog.common.errors import StorageError

# The SQLite store has one chain (its writer shards are partition files of that chain); its id.
CHAIN = "main"
WRITER_CACHE_KIB = 64 * 1024


def connect(path: str, synchronous: str, cache_kib: int = WRITER_CACHE_KIB,
            factory: type[sqlite3.Connection] = sqlite3.Connection) -> sqlite3.Connection:
    """A read-write connection in WAL mode (autocommit; transactions are explicit)."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, factory=factory)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        conn.execute("PRAGMA temp_store=MEMORY")
    except sqlite3.Error as exc:
        # `from exc`: the writer tells a full disk (held and retried) from a broken file by the
        # cause's sqlite_errorname; a new partition file is opened inside a storing transaction.
        raise StorageError(f"{path}: cannot open the event store: {exc}") from exc
    return conn


def connect_ro(path: str, cache_kib: int) -> sqlite3.Connection:
    """A read-only connection; its page cache is small (one per reader thread and partition, and
    contract §5 bounds the collector's RSS; the kernel's page cache keeps hot pages anyway)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    return conn


def store_bytes(main_path: str) -> int:
    """Bytes on disk of the main file, the partitions and their WAL files."""
    total = sum(os.path.getsize(p) for p in (main_path, main_path + "-wal") if os.path.exists(p))
    folder = partition_dir(main_path)
    if folder.is_dir():
        for entry in os.scandir(folder):
            if entry.name.endswith((".db", ".db-wal")):
                try:
                    total += entry.stat().st_size
                except FileNotFoundError:
                    pass  # dropped meanwhile
    return total
