"""The time-partitioned SQLite store (docs/storage-model.md): events land in one file per tier and
period, reads merge across them, dedup spans them, retention drops whole expired partitions
(namespace overrides and the straddling partition included) and the chain still verifies."""

from __future__ import annotations

import json
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.config import CollectorConfig, NamespaceRetention, RetentionConfig
from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.retention import PURGE_ACTION
from fleetlog.collector.signing import Signer
from fleetlog.collector.store import EVENT_COLUMNS, ROW_COLUMNS
from fleetlog.collector.store.blocks import encode_block
from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore
from fleetlog.collector.store.sqlite_blocks import insert_block
from fleetlog.collector.store.sqlite_verify import verify_db
from fleetlog.common.checkpoints import public_pem
from fleetlog.common.timefmt import now_us
from fleetlog.common.verify import Tampered
from tests.unit.store_helpers import event_rows, incoming, partition_conn, purge_once

DAY = 86400 * 1_000_000
# Today, so the purge events (stamped with the real time) are never themselves expired.
_STARTED = now_us()
MIDNIGHT = _STARTED - _STARTED % DAY
NOW = MIDNIGHT + 8 * 3600 * 1_000_000


def _names(tmp_path) -> set[str]:
    return {p.stem for p in (tmp_path / "partitions").glob("*.db")}


def _messages(pages) -> list[str]:
    return [row[16] for page in pages for row in page]


def test_events_go_to_one_partition_per_tier_and_day_and_read_back_in_order(tmp_path):
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    times = [MIDNIGHT - DAY + 10, MIDNIGHT + 5, MIDNIGHT - DAY + 20, MIDNIGHT + 1]
    store.store_batch([incoming("web-1", "a", [1, 2, 3, 4], time_us=times, messages=["a1", "a2", "a3", "a4"]),
                       incoming("web-1", "s", [1, 2], time_us=[MIDNIGHT - DAY + 15, MIDNIGHT + 3],
                                tier="security", messages=["s1", "s2"])], NOW)
    assert _names(tmp_path) == {f"{tier}-{_day(age)}" for tier in ("general", "security") for age in (0, 1)}
    reader = SqliteReader(str(tmp_path / "events.db"))
    everything = build_filter_spec({})
    assert _messages(reader.search(everything)) == ["a1", "s1", "a3", "a4", "s2", "a2"]
    assert _messages(reader.search(everything, order="desc", limit=4)) == ["a2", "s2", "a4", "a3"]
    assert _messages(reader.search(everything, order="asc", limit=2, page_size=1)) == ["a1", "s1"]
    # Follow and forwarders read by seq across every partition.
    [(chain_id, rows)] = reader.read_after({}, None, 10)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    [(_, rows)] = reader.read_after({chain_id: 4}, build_filter_spec({"message": "s2"}), 10)
    assert [r[16] for r in rows] == ["s2"]
    assert reader.status().event_count == 6 and reader.heads() == {chain_id: 6}
    assert reader.event_id(chain_id, 6) == rows[0][1] and reader.event_id(chain_id, 7) is None


def test_a_resent_event_is_a_duplicate_whatever_partition_it_would_go_to_now(tmp_path):
    """Dedup spans partitions: a tier changed by a config reload, or a time that was the read
    time and differs on a re-read, still finds the stored key."""
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    store.store_batch([incoming("web-1", "a", [100, 200, 300], time_us=[MIDNIGHT - 3 * DAY] * 3)], NOW)
    again = incoming("web-1", "a", [100, 200, 300, 400], time_us=[MIDNIGHT] * 4, tier="security")
    [result] = store.store_batch([again], NOW)
    assert (result.stored, result.duplicates) == (1, 3)
    # Twice in one transaction (an agent re-sent a batch still in flight): stored once.
    [first, second] = store.store_batch([incoming("web-1", "b", [1, 2]), incoming("web-1", "b", [2, 3])], NOW)
    assert (first.stored, second.stored, second.duplicates) == (2, 1, 1)
    store.close()
    reopened = SqliteStore(tmp_path / "events.db", collector="c1")
    [result] = reopened.store_batch([incoming("web-1", "a", [300, 400, 500], time_us=[NOW] * 3)], NOW)
    assert (result.stored, result.duplicates) == (1, 2)


def _signed_store(tmp_path, key):
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    Signer(key, "c1", 10).attach(store)
    # 40 days, two tiers, three namespaces, interleaved seqs.
    for age in range(40, 0, -1):
        day = MIDNIGHT - age * DAY + 3600 * 1_000_000
        batches = []
        for ns in ("default", "staging", "legal"):
            for tier in ("general", "security"):
                batches.append(incoming("web-1", f"{ns}-{tier}", [age * 10 + i for i in range(3)],
                                        time_us=[day + i for i in range(3)], tier=tier, namespace=ns,
                                        messages=[f"{ns} {tier} {age}d #{i}" for i in range(3)]))
        store.store_batch(batches, NOW)
    return store


def test_purge_drops_whole_partitions_keeps_overrides_and_stays_verifiable(tmp_path):
    key = Ed25519PrivateKey.generate()
    store = _signed_store(tmp_path, key)
    (tmp_path / "signing.pub").write_text(public_pem(key.public_key()))
    config = CollectorConfig(node_name="c1", retention=RetentionConfig(
        general=30 * 86400, security=20 * 86400,
        namespaces={"staging": NamespaceRetention(general=7 * 86400), "legal": NamespaceRetention(security=float("inf"))}))
    runs, purged = purge_once(store, config, NOW, chunk=7)

    def kept(ns, tier):
        return {int(m.split()[2][:-1]) for (m,) in event_rows(
            store, "SELECT message FROM events WHERE namespace = ? AND tier = ? AND action IS NULL", (ns, tier))}
    # An event goes once the whole day of its partition is past its namespace's cutoff.
    assert kept("default", "general") == set(range(1, 31))
    assert kept("legal", "general") == set(range(1, 31))
    assert kept("staging", "general") == set(range(1, 8))         # row-deleted from the days that stay
    assert kept("default", "security") == kept("staging", "security") == set(range(1, 21))
    assert kept("legal", "security") == set(range(1, 41))        # indefinite: its days stay whole
    # General days 31..40 were dropped as files; security days stay (legal keeps them).
    names = _names(tmp_path)
    assert not any(n.startswith("general-") and n < f"general-{_day(30)}" for n in names)
    assert sum(n.startswith("security-") for n in names) == 40 + 1   # + today's, with the purge events
    assert purged == {"general": 10 * 9 + 23 * 3, "security": 20 * 6}
    by_tier = {r.tier: r for r in runs}
    assert len(by_tier["general"].partitions) == 10 and by_tier["security"].partitions == []
    store.close()
    report = verify_db(str(tmp_path), key.public_key())
    assert report.events == 40 * 18 - (10 * 9 + 23 * 3) - 20 * 6 + 2     # + the two purge events

    # The purge events record what verify needs, and a forged anchor of a dropped range is caught.
    reopened = SqliteStore(tmp_path / "events.db", collector="c1")
    [fields] = [json.loads(f) for (f,) in event_rows(
        reopened, "SELECT fields FROM events WHERE action = ? AND fields LIKE '%\"general\"%'", (PURGE_ACTION,))]
    assert fields["count"] == 10 * 9 + 23 * 3 and len(fields["partitions"]) == 10
    assert sum(hi - lo + 1 for lo, hi in fields["seq_ranges"]) == fields["count"]
    reopened.close()
    conn = partition_conn(tmp_path / "events.db")
    first_dropped = fields["seq_ranges"][0][1]
    conn.execute("UPDATE chain_anchors SET link = zeroblob(32) WHERE seq = ?", (first_dropped,))
    conn.commit()
    conn.close()
    try:
        verify_db(str(tmp_path), key.public_key())
        raise AssertionError("a forged anchor verified")
    except Tampered as error:
        assert "anchors" in error.reason or "chain link" in error.reason or "checkpoint" in error.reason


def _rfc(us: int) -> str:
    from fleetlog.common.timefmt import format_us
    return format_us(us)


def _day(age: int) -> str:
    import datetime as dt
    return (dt.datetime.fromtimestamp((MIDNIGHT - age * DAY) / 1e6, dt.UTC)).strftime("%Y%m%dT%H%M")


def test_a_second_purge_finds_nothing_and_new_late_events_go_again(tmp_path):
    key = Ed25519PrivateKey.generate()
    store = _signed_store(tmp_path, key)
    config = CollectorConfig(node_name="c1", retention=RetentionConfig(general=10 * 86400, security=10 * 86400))
    reader = SqliteReader(str(tmp_path / "events.db"))
    day35 = build_filter_spec({"since": _rfc(MIDNIGHT - 35 * DAY), "until": _rfc(MIDNIGHT - 34 * DAY - 1)})
    assert sum(len(page) for page in reader.search(day35)) == 18    # the reader has that day's files open
    runs, _ = purge_once(store, config, NOW, chunk=7)
    assert {r.tier: r.count for r in runs} == {"general": 30 * 9, "security": 30 * 9}
    runs, _ = purge_once(store, config, NOW, chunk=7)
    assert runs == []
    # A late event for a dropped day recreates its partition; the next purge drops it again.
    store.store_batch([incoming("web-2", "late", [1], time_us=[MIDNIGHT - 35 * DAY])], NOW)
    assert f"general-{_day(35)}" in _names(tmp_path)
    # A reader that had the old file of that day open sees the new one, not the dropped events.
    assert [r[4] for page in reader.search(day35) for r in page] == ["web-2"]
    runs, _ = purge_once(store, config, NOW, chunk=7)
    assert [(r.tier, r.count) for r in runs] == [("general", 1)]
    assert f"general-{_day(35)}" not in _names(tmp_path)
    Signer(key, "c1", 10).checkpoint_head(store)
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == 10 * 18 + 3   # + three purge events


def test_partition_files_a_crashed_transaction_left_are_discarded_at_open(tmp_path):
    """Crash rules 2 and 3: partition rows past the main file's head, and partition files it does
    not list, do not exist: readers never see them and the next open deletes them."""
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    store.store_batch([incoming("web-1", "a", [1, 2, 3], time_us=[NOW] * 3)], NOW)
    [part] = store.partitions()
    conn = store.partition_conn(part.name)
    # What a crash between the partition commit and the main commit leaves: a block of seq 4
    # (position 4 of the same source, so a dedup that trusted it would refuse the resend below).
    row = dict.fromkeys(ROW_COLUMNS)
    row.update(seq=4, origin=1, pos=4, time=NOW, received_at=NOW, host="web-1", namespace="default", level=6,
               message="uncommitted", tier="general", truncated=0, hash=b"\x01" * 32)
    insert_block(conn, encode_block([list(row.values())], lambda seq: store.chain_head))
    orphan = tmp_path / "partitions" / "general-20200101T0000.db"
    orphan.write_bytes(b"")
    reader = SqliteReader(str(tmp_path / "events.db"))
    assert _messages(reader.search(build_filter_spec({}))) == ["line 1", "line 2", "line 3"]
    assert reader.read_after({}, None, 10)[0][1][-1][0] == 3
    reader.close()
    store.close()
    reopened = SqliteStore(tmp_path / "events.db", collector="c1")
    assert not orphan.exists()
    assert [r[0] for r in event_rows(reopened, "SELECT seq FROM events")] == [1, 2, 3]
    [result] = reopened.store_batch([incoming("web-1", "a", [4])], NOW)
    assert (result.stored, result.first_seq) == (1, 4)
    assert os.path.exists(tmp_path / "events.db")


def test_a_new_partition_period_applies_to_new_partitions_and_reads_merge_both(tmp_path):
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    hour = 3600 * 1_000_000
    store.store_batch([incoming("web-1", "a", [1, 2], time_us=[MIDNIGHT + 7 * hour, MIDNIGHT + 9 * hour],
                                messages=["day 7h", "day 9h"])], NOW)
    store.close()
    store = SqliteStore(tmp_path / "events.db", collector="c1", partition_period=6 * 3600)
    store.store_batch([incoming("web-1", "a", [3, 4], time_us=[MIDNIGHT + 8 * hour, MIDNIGHT + 1 * hour],
                                messages=["6h 8h", "6h 1h"])], NOW)
    assert {p.name[-4:] for p in store.partitions()} == {"0000", "0600"}   # the day, then 6-hour ones
    reader = SqliteReader(str(tmp_path / "events.db"))
    assert _messages(reader.search(build_filter_spec({}))) == ["6h 1h", "day 7h", "6h 8h", "day 9h"]
    assert _messages(reader.search(build_filter_spec({}), order="desc", limit=3)) == ["day 9h", "6h 8h", "day 7h"]


def test_one_transaction_of_several_streams_and_a_long_one_stores_every_event_in_its_block(tmp_path):
    """The writer keeps a transaction by column: a stream longer than a block is cut by slicing its
    columns, a partition of several streams goes the rows' way; either way every event is stored
    once, in seq order, one stream a block, and the chain verifies."""
    import sqlite3

    from fleetlog.collector.store.sqlite_bulk import MAX_BLOCK_EVENTS
    key = Ed25519PrivateKey.generate()
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    Signer(key, "c1", every=1000).attach(store)
    long = MAX_BLOCK_EVENTS + 100
    store.store_batch([incoming("web-1", "a", list(range(1, long + 1)), time_us=[NOW + i for i in range(long)]),
                       incoming("web-2", "b", [1, 2, 3], time_us=[NOW + 1, NOW + 2, NOW + 3],
                                messages=["b1", "b2", "b3"]),
                       incoming("web-1", "c", [7], time_us=[NOW + 4], messages=["c7"])], NOW)
    [path] = (tmp_path / "partitions").glob("*.db")
    with sqlite3.connect(path) as conn:
        blocks = conn.execute("SELECT host, count, min_seq, max_seq FROM blocks ORDER BY min_seq").fetchall()
    assert blocks == [("web-1", MAX_BLOCK_EVENTS, 1, MAX_BLOCK_EVENTS),
                      ("web-1", 101, MAX_BLOCK_EVENTS + 1, long + 4),
                      ("web-2", 3, long + 1, long + 3)]
    reader = SqliteReader(str(tmp_path / "events.db"))
    [(_, rows)] = reader.read_after({}, None, long + 10)
    assert [r[0] for r in rows] == list(range(1, long + 5))
    assert [r[16] for r in rows[long:]] == ["b1", "b2", "b3", "c7"]
    host = EVENT_COLUMNS.index("host")
    assert [r[host] for r in rows[long - 1:]] == ["web-1", "web-2", "web-2", "web-2", "web-1"]
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == long + 4


def test_a_transaction_the_chain_cannot_link_stores_nothing_while_its_blocks_were_encoding(tmp_path):
    """The writer makes a transaction's links in one partition thread while the others encode its
    blocks. A value without a canonical form (a lone surrogate) fails the linking after the blocks
    have started: nothing of the transaction is stored, no transaction stays open, and the next
    one is stored from seq 1 and verifies."""
    import pytest

    from fleetlog.collector.store.sqlite_bulk import MAX_BLOCK_EVENTS
    key = Ed25519PrivateKey.generate()
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    signer = Signer(key, "c1", every=1000)
    signer.attach(store)
    count = 3 * MAX_BLOCK_EVENTS
    messages = [f"line {i}" for i in range(count - 1)] + ["lone \ud800 surrogate"]
    with pytest.raises(UnicodeEncodeError):
        store.store_batch([incoming("web-1", "a", list(range(1, count + 1)), messages=messages,
                                    time_us=[NOW + i for i in range(count)])], NOW)
    assert store.last_seq == 0
    store.store_batch([incoming("web-1", "a", [1, 2, 3], messages=["x1", "x2", "x3"],
                                time_us=[NOW + 1, NOW + 2, NOW + 3])], NOW)
    reader = SqliteReader(str(tmp_path / "events.db"))
    [(_, rows)] = reader.read_after({}, None, 10)
    assert [(r[0], r[16]) for r in rows] == [(1, "x1"), (2, "x2"), (3, "x3")]
    assert signer.checkpoint_head(store)
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == 3
