"""A single-file data_dir (schema 1: every event in events.db) is migrated to time partitions at
open: nothing is lost, it still verifies, dedup still knows its keys, retention still purges it,
and an interrupted migration finishes at the next open."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.config import CollectorConfig, RetentionConfig
from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.signing import Signer
from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.schema import CARRIED_TABLES, EVENTS_TABLE
from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore
from fleetlog.collector.store.sqlite_verify import verify_db
from fleetlog.common.timefmt import now_us
from tests.unit.store_helpers import (
    event_count,
    incoming,
    partition_events,
    partition_files,
    purge_once,
    source_keys_of,
)

DAY = 86400 * 1_000_000
NOW = now_us()
EVENTS = 50


def single_file_store(folder, key) -> None:
    """A schema-1 store as the collector before partitions left it: one file with the events,
    their full-text index, meta, origins, anchors, checkpoints and keys."""
    build = folder / "build"
    store = SqliteStore(build / "events.db", collector="c1")
    Signer(key, "c1", 10).attach(store)
    old = [NOW - (40 - p) * DAY for p in range(EVENTS)]     # 40 days ago up to 10 days ahead: spans many days
    store.store_batch([incoming("web-1", "k1", list(range(EVENTS)), time_us=[min(t, NOW) for t in old])], NOW)
    Signer(key, "c1", 10).checkpoint_head(store)
    store.close()
    folder.mkdir(exist_ok=True)
    target = folder / "events.db"
    conn = sqlite3.connect(target)
    conn.executescript(EVENTS_TABLE + """;
        CREATE UNIQUE INDEX events_origin_pos ON events(origin, pos);
        CREATE INDEX events_time ON events(time);
        CREATE VIRTUAL TABLE events_fts USING fts5(message, content='events', content_rowid='seq',
                                                   tokenize='unicode61', columnsize=0);""")
    with sqlite3.connect(build / "events.db") as main:
        keys = source_keys_of(main)
    for part in partition_files(build / "events.db"):
        with sqlite3.connect(part) as source:
            rows = partition_events(source, keys)
        conn.executemany(f"INSERT INTO events({', '.join(ROW_COLUMNS)}) VALUES ({','.join('?' * len(ROW_COLUMNS))})",
                         rows)
    conn.commit()
    conn.execute("INSERT INTO events_fts(rowid, message) SELECT seq, message FROM events")
    conn.execute("ATTACH DATABASE ? AS m", (str(build / "events.db"),))
    for table in CARRIED_TABLES:
        conn.execute(f"CREATE TABLE {table} AS SELECT * FROM m.{table}")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    shutil.rmtree(build)


def _all(path) -> list[tuple]:
    reader = SqliteReader(str(path))
    try:
        return [row for page in reader.search(build_filter_spec({})) for row in page]
    finally:
        reader.close()


def test_a_single_file_store_is_migrated_at_open_and_loses_nothing(tmp_path, caplog):
    key = Ed25519PrivateKey.generate()
    single_file_store(tmp_path, key)
    before = verify_db(str(tmp_path), key.public_key())
    assert before.events == EVENTS
    with sqlite3.connect(tmp_path / "events.db") as conn:
        rows_before = conn.execute("SELECT seq, id, message, hash FROM events ORDER BY seq").fetchall()

    with caplog.at_level(logging.WARNING, logger="fleetlog.collector.store"):
        store = SqliteStore(tmp_path / "events.db", collector="c1")
    assert store.migrated and not store.created
    assert f"migrating a single-file store of {EVENTS} events to time partitions" in caplog.text
    # ... and the legacy partition it becomes is converted to blocks at the same open.
    assert f"converted {EVENTS} events of 1 partition files to compressed blocks: legacy" in caplog.text
    with sqlite3.connect(tmp_path / "partitions" / "legacy.db") as legacy:
        tables = {name for (name,) in legacy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "events" not in tables and "events_fts" not in tables
        assert legacy.execute("SELECT sum(count) FROM blocks").fetchone()[0] == EVENTS
    assert (tmp_path / "partitions" / "legacy.db").exists()
    assert [(r[0], r[1], r[16]) for r in _all(tmp_path / "events.db")] == [(s, i, m) for s, i, m, _ in rows_before]
    assert store.last_seq == EVENTS

    # Dedup knows the migrated keys; new events continue the chain in daily partitions.
    [result] = store.store_batch([incoming("web-1", "k1", [EVENTS - 1, EVENTS], time_us=[NOW, NOW])], NOW)
    assert (result.stored, result.duplicates, result.first_seq) == (1, 1, EVENTS + 1)
    Signer(key, "c1", 10).attach(store)
    Signer(key, "c1", 10).checkpoint_head(store)
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == EVENTS + 1

    # The legacy partition mixes days: retention deletes its expired events row by row.
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    config = CollectorConfig(node_name="c1", retention=RetentionConfig(general=30 * 86400))
    [run], _ = purge_once(store, config, NOW)
    assert run.tier == "general" and run.count == 10 and run.partitions == []   # 40..31 days old
    assert event_count(store, "action IS NULL") == EVENTS + 1 - 10
    Signer(key, "c1", 10).checkpoint_head(store)
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == EVENTS + 1 - 10 + 1


def test_an_interrupted_migration_restarts_or_finishes(tmp_path):
    key = Ed25519PrivateKey.generate()
    single_file_store(tmp_path, key)
    # Stopped while building the new main file: the old file is untouched, so it starts again.
    (tmp_path / "events.db.migrating").write_bytes(b"half-written")
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    assert store.migrated and store.last_seq == EVENTS
    store.close()
    assert len(_all(tmp_path / "events.db")) == EVENTS
    # Stopped after the old file moved, before the new main file was renamed into place.
    os.replace(tmp_path / "events.db", tmp_path / "events.db.migrating")
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    assert store.migrated and store.last_seq == EVENTS and not store.created
    store.close()
    assert len(_all(tmp_path / "events.db")) == EVENTS
    assert verify_db(str(tmp_path), key.public_key()).events == EVENTS
