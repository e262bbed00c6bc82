"""Compaction of small blocks (collector/store/sqlite_compact.py): a stream fed one event per
transaction ends as a few blocks, every event readable once and the chain verifying; a merge
never takes a block past the committed head."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.signing import Signer
from fleetlog.collector.store import ROW_COLUMNS, sqlite_writer
from fleetlog.collector.store.blocks import encode_block
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.collector.store.sqlite_blocks import insert_block
from fleetlog.collector.store.sqlite_compact import FAN_IN, TIERS, compact_stream
from fleetlog.collector.store.sqlite_verify import verify_db
from tests.unit.store_helpers import event_rows, incoming

NOW = 1_700_000_000_000_000


def _blocks(store, name: str) -> list[tuple[int, str, int, int]]:
    return store.partition_conn(name).execute(
        "SELECT count, host, min_seq, max_seq FROM blocks ORDER BY min_seq").fetchall()


def test_one_event_transactions_end_as_few_blocks_each_event_once_and_the_chain_verifies(tmp_path):
    key = Ed25519PrivateKey.generate()
    store = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    Signer(key, "c1", 50).attach(store)
    for pos in range(700):
        # Two streams interleaved, so each one's blocks hold runs of seqs with gaps between.
        host = "web-1" if pos % 3 else "web-2"
        store.store_batch([incoming(host, "a.log", [pos], messages=[f"event {pos} of {host}"])], NOW)
    [part] = store.partitions()
    blocks = _blocks(store, part.name)
    # No tier holds FAN_IN blocks of one stream any more: at most FAN_IN - 1 per tier and stream.
    for host in ("web-1", "web-2"):
        counts = [count for count, h, _, _ in blocks if h == host]
        assert sum(counts) == (466 if host == "web-1" else 234)
        floor = 0
        for ceiling in TIERS:
            assert len([c for c in counts if floor <= c < ceiling]) < FAN_IN, (host, counts)
            floor = ceiling
    assert len(blocks) <= 2 * len(TIERS) * (FAN_IN - 1)
    rows = event_rows(store, "SELECT seq, host, pos, message FROM events ORDER BY seq")
    assert [r[0] for r in rows] == list(range(1, 701))
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("web-1" if p % 3 else "web-2", p, f"event {p} of {'web-1' if p % 3 else 'web-2'}") for p in range(700)]
    # A resend after the merges is still a duplicate, and a new event still goes in.
    [again] = store.store_batch([incoming("web-1", "a.log", [1, 2, 700])], NOW)
    assert (again.stored, again.duplicates) == (1, 2)
    Signer(key, "c1", 50).checkpoint_head(store)
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == 701


def test_a_merge_never_takes_a_block_past_the_committed_head(tmp_path):
    store = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    store._compact_small = lambda pending: None     # merged by hand below
    for pos in range(FAN_IN):
        store.store_batch([incoming("web-1", "a.log", [pos])], NOW)
    [part] = store.partitions()
    conn = store.partition_conn(part.name)
    # What a crash between a partition's commit and the main file's leaves: a block past the head.
    row = dict.fromkeys(ROW_COLUMNS)
    row.update(seq=FAN_IN + 1, origin=1, pos=FAN_IN, time=NOW, received_at=NOW, host="web-1", namespace="default",
               level=6, message="uncommitted", tier="general", truncated=0, hash=b"\x01" * 32)
    insert_block(conn, encode_block([list(row.values())], lambda seq: store.chain_head))
    assert compact_stream(conn, "default", "web-1", store.last_seq) == (FAN_IN, True)
    assert [(count, low, high) for count, _, low, high in _blocks(store, part.name)] == [
        (FAN_IN, 1, FAN_IN), (1, FAN_IN + 1, FAN_IN + 1)]
    store.close()
    reopened = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    assert [(count, low) for count, _, low, _ in _blocks(reopened, part.name)] == [(FAN_IN, 1)]
    assert [r[0] for r in event_rows(reopened, "SELECT pos FROM events ORDER BY seq")] == list(range(FAN_IN))
    reopened.close()


def test_a_purge_inside_merged_blocks_keeps_the_links_of_its_gaps_as_anchors(tmp_path):
    """The merged blocks keep four bytes of most links: the anchors of a purge inside them are
    recomputed from their runs and must be the very links the chain had."""
    store = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    for pos in range(3 * FAN_IN):
        host = "web-1" if pos % 2 else "web-2"
        store.store_batch([incoming(host, "a.log", [pos])], NOW)
    [part] = store.partitions()
    assert len(_blocks(store, part.name)) < 3 * FAN_IN          # merged
    links = dict(event_rows(store, "SELECT seq, hash FROM events"))
    result = store.delete_events([2, 3, 4, 9, 17, 24])
    assert result.ranges == [(2, 4), (9, 9), (17, 17), (24, 24)]
    assert dict(store.conn.execute("SELECT seq, link FROM chain_anchors")) == {
        4: links[4], 9: links[9], 17: links[17], 24: links[24]}
    kept = event_rows(store, "SELECT seq, hash FROM events")
    assert sorted(seq for seq, _ in kept) == [s for s in range(1, 3 * FAN_IN + 1) if s not in (2, 3, 4, 9, 17, 24)]
    assert all(link == links[seq] for seq, link in kept)
    store.close()


def test_dedup_opens_only_the_blocks_whose_positions_may_overlap_a_batchs(tmp_path, monkeypatch):
    store = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    store._compact_small = lambda pending: None     # ten blocks of 100 positions each
    for first in range(0, 1000, 100):
        store.store_batch([incoming("web-1", "a.log", list(range(first, first + 100)))], NOW)
    decoded = []
    decode = sqlite_writer.decode_stored
    monkeypatch.setattr(sqlite_writer, "decode_stored", lambda conn, block: decoded.append(1) or decode(conn, block))
    [new] = store.store_batch([incoming("web-1", "a.log", list(range(1000, 1100)))], NOW)
    assert (new.stored, len(decoded)) == (100, 0)       # past every block's positions: none opened
    [resent] = store.store_batch([incoming("web-1", "a.log", list(range(350, 460)))], NOW)
    assert (resent.stored, resent.duplicates, len(decoded)) == (0, 110, 2)   # the blocks of 300-399 and 400-499
    store.close()


def test_streams_that_come_due_together_are_merged_over_the_next_commits_not_in_one(tmp_path, monkeypatch):
    """A fleet in lockstep brings every stream's merge due in the same transaction: a commit
    re-encodes a bounded number of events (here 40: four times its 10), the rest follow."""
    monkeypatch.setattr(sqlite_writer, "MERGE_BUDGET", 16)
    store = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    hosts = [f"web-{n}" for n in range(10)]

    def merged_streams() -> int:
        [part] = store.partitions()
        return len({host for count, host, _, _ in _blocks(store, part.name) if count == FAN_IN})

    for pos in range(FAN_IN):
        store.store_batch([incoming(host, "a.log", [pos]) for host in hosts], NOW)
    assert merged_streams() == 5            # 5 streams of 8 events: the budget of this commit
    store.store_batch([incoming(host, "a.log", [FAN_IN]) for host in hosts], NOW)
    assert merged_streams() == 10
    assert sorted(event_rows(store, "SELECT host, pos FROM events")) == sorted(
        (host, pos) for host in hosts for pos in range(FAN_IN + 1))
    store.close()


def test_an_unreadable_block_met_by_dedup_is_a_storage_error_naming_it(tmp_path):
    """A payload altered on disk, met when a re-sent batch is checked for duplicates: the writer
    reports it as a storage fault (held and retried like a failing disk), never a traceback."""
    import sqlite3

    import pytest

    from fleetlog.collector.store.sqlite import SqliteStore
    from fleetlog.common.errors import StorageError
    from tests.unit.store_helpers import incoming, partition_files

    store = SqliteStore(tmp_path / "events.db", collector="c1")
    store.store_batch([incoming("web-1", "a.log", list(range(10)))], 1)
    store.close()
    conn = sqlite3.connect(partition_files(tmp_path / "events.db")[0])
    conn.execute("UPDATE blocks SET data = x'28b52ffd00'")
    conn.commit()
    conn.close()
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    try:
        with pytest.raises(StorageError, match=r"block \d+ of a partition file is not readable .*fleetlog verify"):
            store.store_batch([incoming("web-1", "a.log", [5, 6])], 2)
    finally:
        store.close()
