"""A data_dir of the row model (schema 2: one row per event in each partition file) is converted
to blocks when the writer opens it (collector/store/sqlite_convert.py): every event comes back
the same (ids, links, every column), the chain verifies, rows past the committed head are not
converted, and a stop between two files leaves a store that verifies and converts the rest at
the next open."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.signing import Signer
from fleetlog.collector.store import ROW_COLUMNS, sqlite_convert, sqlite_writer
from fleetlog.collector.store.blocks import decode_block
from fleetlog.collector.store.schema import ROW_MODEL_SCHEMA
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.collector.store.sqlite_verify import verify_db
from fleetlog.collector.store.sqlite_writer import INSERT_CHECKPOINT
from fleetlog.common import chain
from fleetlog.common.errors import StorageError
from tests.unit.store_helpers import event_rows, incoming, partition_events, source_keys_of

DAY = 86400 * 1_000_000
NOW = 1_700_000_000_000_000 - 1_700_000_000_000_000 % DAY + 3_600_000_000
INSERT = f"INSERT INTO events({', '.join(ROW_COLUMNS)}) VALUES ({','.join('?' * len(ROW_COLUMNS))})"
_ID, _HASH = ROW_COLUMNS.index("id"), ROW_COLUMNS.index("hash")
_CHAIN_COLUMNS = [ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS]


def _row_model_store(folder, key) -> list[list]:
    """A store as the row model left it: three days, two tiers, two hosts, and a last event whose
    id is not the derived one; returns its events."""
    store = SqliteStore(folder / "events.db", "normal", collector="c1")
    signer = Signer(key, "c1", 1000)
    signer.attach(store)
    for day in range(3):
        for host in ("web-1", "web-2"):
            for tier in ("general", "security"):
                positions = list(range(day * 100, day * 100 + 40))
                store.store_batch([incoming(host, f"{tier}.log", positions, tier=tier,
                                            time_us=[NOW - day * DAY + p for p in positions],
                                            messages=[f"{host} {tier} {p}" for p in positions])], NOW)
    keys = source_keys_of(store.conn)
    files = {part.name: partition_events(store.partition_conn(part.name), keys) for part in store.partitions()}
    store.close()
    events = sorted((row for rows in files.values() for row in rows), key=lambda r: r[0])
    # The last event with an id of its own (an old store's): its link, and the head, follow.
    last = events[-1]
    last[_ID] = "0123456789abcdef0123456789abcdef"
    last[_HASH] = chain.extend(bytes(events[-2][_HASH]), chain.canonical_values([last[c] for c in _CHAIN_COLUMNS]))
    with sqlite3.connect(folder / "events.db") as main:
        main.execute("UPDATE meta SET value = ? WHERE key = 'chain_head'", (last[_HASH].hex(),))
        main.execute(INSERT_CHECKPOINT, signer._sign(last[0], last[_HASH]))
    for name, rows in files.items():
        path = folder / "partitions" / f"{name}.db"
        path.unlink()
        with sqlite3.connect(path) as conn:
            conn.executescript(ROW_MODEL_SCHEMA)
            conn.executemany(INSERT, rows)
            conn.execute("INSERT INTO events_fts(rowid, message) SELECT seq, message FROM events")
    return events


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_row_model_store_is_converted_at_open_and_every_event_comes_back_the_same(tmp_path, caplog):
    key = Ed25519PrivateKey.generate()
    events = _row_model_store(tmp_path, key)
    files = sorted((tmp_path / "partitions").glob("*.db"))
    assert len(files) == 6 and all("events" in _tables(f) for f in files)
    # A crash of the row model left a row past the committed head in one file: it does not exist.
    stale = list(events[-1])
    stale[0], stale[2], stale[18] = len(events) + 11, 9_999, "never committed"
    with sqlite3.connect(files[0]) as conn:
        conn.execute(INSERT, stale)
    with caplog.at_level(logging.WARNING, logger="fleetlog.collector.store"):
        store = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    assert f"converted {len(events)} events of 6 partition files to compressed blocks" in caplog.text
    assert not any({"events", "events_fts"} & _tables(f) for f in files)
    assert sorted(list(r) for r in event_rows(store, "SELECT * FROM events")) == events
    # The id of its own is stored; the derived ones are not.
    stored_ids = [row[_ID] for part in store.partitions()
                  for (data,) in store.partition_conn(part.name).execute("SELECT data FROM blocks")
                  for row in decode_block(bytes(data)).rows]
    assert len(stored_ids) == len(events)
    assert [i for i in stored_ids if i is not None] == ["0123456789abcdef0123456789abcdef"]
    # New events continue the chain; dedup knows the converted keys.
    [result] = store.store_batch([incoming("web-1", "general.log", [239, 240], time_us=[NOW, NOW])], NOW)
    assert (result.stored, result.duplicates) == (1, 1)
    Signer(key, "c1", 1000).checkpoint_head(store)
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == len(events) + 1


def test_a_stop_between_two_files_leaves_a_verifying_store_and_the_next_open_converts_the_rest(tmp_path, monkeypatch):
    key = Ed25519PrivateKey.generate()
    events = _row_model_store(tmp_path, key)
    convert = sqlite_convert._convert_file
    calls = []

    def stopped_at_the_third(conn, *args):
        calls.append(1)
        if len(calls) == 3:
            raise sqlite3.OperationalError("disk I/O error")
        return convert(conn, *args)

    monkeypatch.setattr(sqlite_convert, "_convert_file", stopped_at_the_third)
    # Blocks written every 7 rows: runs start after rows already made blocks of the same file. And
    # two files open at a time: the one converted stays open while others are asked for links.
    monkeypatch.setattr(sqlite_convert, "MAX_BUFFERED_ROWS", 7)
    monkeypatch.setattr(sqlite_writer, "OPEN_PARTITIONS", 2)
    with pytest.raises(StorageError, match="converting partition .* to blocks failed: disk I/O error"):
        SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    files = sorted((tmp_path / "partitions").glob("*.db"))
    assert sorted("events" in _tables(f) for f in files) == [False, False, True, True, True, True]
    assert verify_db(str(tmp_path), key.public_key()).events == len(events)    # both layouts at once
    monkeypatch.setattr(sqlite_convert, "_convert_file", convert)
    store = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    assert not any("events" in _tables(f) for f in files)
    assert sorted(list(r) for r in event_rows(store, "SELECT * FROM events")) == events
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == len(events)
