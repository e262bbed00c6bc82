"""The storage writer's batch insert in C (collector/store/_sqlite_native.c) against the
executemany path it replaces: the same rows, the same full-text index, the same errors.

The import is not guarded: `make test` builds the extension (libsqlite3-dev comes with the system
packages), and a missing build must fail here rather than pass on the fallback.
"""

from __future__ import annotations

import random
import sqlite3

import pytest

from fleetlog.collector.store import _sqlite_native, sqlite_bulk
from fleetlog.collector.store.sqlite import SqliteStore
from tests.unit.store_helpers import event_rows, incoming

NOW = 1_700_000_000_000_000
# Controls (NUL included), quotes, non-ASCII of 2, 3 and 4 UTF-8 bytes, CR/LF.
ALPHABET = [chr(c) for c in range(0x80)] + ["é", "ß", "✓", "€", "\u2028", "\ufffd", "😀", "𝄞", "\r\n"]


def test_the_extension_is_built_and_uses_the_sqlite3_modules_library():
    version, _path = _sqlite_native.library()
    assert version == sqlite3.sqlite_version
    assert sqlite_bulk.NATIVE


def _random_batches(seed: int) -> list:
    rng = random.Random(seed)
    batches = []
    for source in range(3):
        count = rng.randint(1, 400)
        positions = sorted(rng.sample(range(10**12), count))
        text = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60))) for _ in positions]
        text[0] = "x" * (10 * 1024 * 1024)            # a 10 MB line, stored whole
        batches.append(incoming(
            f"web-{source}", f"src-{source}", positions, messages=text,
            users=[rng.choice(["", "alice", "bob é"]) for _ in positions],
            pids=[rng.choice([0, 1, 2**31, 2**62]) for _ in positions],
            time_us=[NOW + rng.randint(-10**9, 10**9) for _ in positions],
            tier=rng.choice(["general", "security"])))
    return batches


def _contents(store: SqliteStore) -> tuple[list, list]:
    rows = sorted(event_rows(store, "SELECT * FROM events"))
    matches = sorted(event_rows(store, "SELECT rowid FROM events_fts WHERE events_fts MATCH 'bob OR x'"))
    return rows, matches


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_native_inserts_store_what_executemany_stores(tmp_path, monkeypatch, seed):
    native = SqliteStore(tmp_path / "native" / "events.db", collector="c1")
    native.store_batch(_random_batches(seed), NOW)
    assert all(native.partition_conn(p.name).native is not None for p in native.partitions())
    monkeypatch.setattr(sqlite_bulk, "_native", None)
    fallback = SqliteStore(tmp_path / "fallback" / "events.db", collector="c1")
    fallback.store_batch(_random_batches(seed), NOW)
    assert all(fallback.partition_conn(p.name).native is None for p in fallback.partitions())
    native_rows, native_matches = _contents(native)
    fallback_rows, fallback_matches = _contents(fallback)
    assert len(native_rows) == sum(len(batch) for batch in _random_batches(seed))
    assert native_rows == fallback_rows
    assert native_matches == fallback_matches and native_matches
    assert native.chain_head == fallback.chain_head


def _conn(tmp_path) -> sqlite_bulk.PartitionConnection:
    path = str(tmp_path / "p.db")
    conn = sqlite3.connect(path, isolation_level=None, factory=sqlite_bulk.PartitionConnection)
    conn.execute("PRAGMA journal_mode=WAL")
    from fleetlog.collector.store.schema import create_partition_schema
    create_partition_schema(conn)
    conn.open_native(path, "full", 1024)
    return conn


def _row(seq: int, message: str = "m") -> list:
    return [seq, 1, seq, f"{seq:032x}", NOW, NOW, "web-1", None, "c1", "default", "file:/a", "application",
            None, None, 6, None, None, None, message, None, "general", 0, bytes(32)]


def test_a_failed_insert_raises_the_sqlite3_error_and_the_batch_rolls_back(tmp_path):
    conn = _conn(tmp_path)
    conn.begin_batch()
    conn.insert_batch([_row(1), _row(2)])
    conn.commit_batch()
    conn.begin_batch()
    with pytest.raises(sqlite3.IntegrityError) as caught:
        conn.insert_batch([_row(3), _row(2)])      # seq 2 again: the primary key refuses it
    assert caught.value.sqlite_errorname == "SQLITE_CONSTRAINT"
    conn.rollback_batch()
    assert conn.execute("SELECT seq FROM events ORDER BY seq").fetchall() == [(1,), (2,)]
    # A value the store never keeps is refused before anything is written.
    conn.begin_batch()
    with pytest.raises(TypeError, match="float"):
        conn.insert_batch([_row(3)[:4] + [1.5] + _row(3)[5:]])
    conn.rollback_batch()
    conn.close()


def test_a_read_only_file_is_a_storage_fault_the_writer_waits_out(tmp_path):
    """The writer holds and retries a batch on SQLITE_READONLY / SQLITE_IOERR / SQLITE_FULL
    (collector/writer.py is_transient); the native path must name them the same way."""
    conn = _conn(tmp_path)
    conn.native.execute("PRAGMA query_only=1")
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.begin_batch()
        conn.insert_batch([_row(1)])
    assert caught.value.sqlite_errorname == "SQLITE_READONLY"
    conn.close()
