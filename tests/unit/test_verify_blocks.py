"""`fleetlog verify --db` over blocks whose seqs interleave (merged blocks of several streams: each
holds runs of seqs, between which other streams' events lie), and the bounded reading: a block is
decoded when the seq merge reaches its first seq, not before."""

from __future__ import annotations

import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.signing import Signer
from fleetlog.collector.store import sqlite_verify, sqlite_verify_blocks
from fleetlog.collector.store.blocks import HOST, SEQ, encode_block
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.collector.store.sqlite_blocks import insert_block
from fleetlog.collector.store.sqlite_verify import verify_db
from fleetlog.common.verify import Tampered
from tests.unit.store_helpers import incoming
from tests.unit.tamper_helpers import LEVEL, at, block_ids, decoded, part_conn, rewrite_blocks

HOSTS = ("web-1", "web-2", "web-3")
ROUNDS = 12
EACH = 5           # events per host and round: every block's runs are 5 seqs, 10 apart


def merge_streams(path) -> None:
    """Every stream's blocks as one block of the union of their rows and runs (what compaction
    makes), so the blocks of the partition interleave in seq."""
    conn = part_conn(path)
    streams: dict[str, list] = {}
    before: dict[int, bytes] = {}
    for block_id in block_ids(conn):
        block = decoded(conn, block_id)
        before.update((run.start, run.link_before) for run in block.runs)
        for row in block.rows:
            streams.setdefault(row[HOST], []).append(row)
    conn.execute("DELETE FROM block_origins")
    conn.execute("DELETE FROM blocks")
    for rows in streams.values():
        insert_block(conn, encode_block(sorted(rows, key=lambda row: row[SEQ]), before.__getitem__))
    conn.commit()
    conn.close()


@pytest.fixture
def interleaved(tmp_path):
    key = Ed25519PrivateKey.generate()
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    signer = Signer(key, "c1", 10)
    signer.attach(store)
    for round_ in range(ROUNDS):
        positions = list(range(round_ * EACH + 1, round_ * EACH + EACH + 1))
        store.store_batch([incoming(host, "k1", positions) for host in HOSTS], 1)
    signer.checkpoint_head(store)
    store.close()
    merge_streams(tmp_path)
    return tmp_path, key


def test_interleaved_blocks_verify_as_one_chain(interleaved):
    path, key = interleaved
    conn = part_conn(path)
    spans = conn.execute("SELECT min_seq, max_seq, count FROM blocks ORDER BY min_seq").fetchall()
    conn.close()
    total = len(HOSTS) * ROUNDS * EACH
    assert spans == [(1 + EACH * h, total - EACH * (len(HOSTS) - 1 - h), ROUNDS * EACH) for h in range(len(HOSTS))]
    report = verify_db(str(path), key.public_key())
    assert (report.events, report.checkpoints) == (total, total // 10)


def test_a_change_inside_an_interleaved_block_is_named_by_seq(interleaved):
    path, key = interleaved
    rewrite_blocks(path, at(97, lambda row: row.__setitem__(LEVEL, 2)))
    with pytest.raises(Tampered) as caught:
        verify_db(str(path), key.public_key())
    assert caught.value.seq == 97


def test_blocks_are_decoded_as_the_merge_reaches_them(interleaved, monkeypatch):
    """Memory holds the blocks open at one seq, never a whole partition."""
    path, _ = interleaved
    conn = part_conn(path)
    firsts = sorted(first for (first,) in conn.execute("SELECT min_seq FROM blocks"))
    conn.close()
    decoded_firsts: list[int] = []
    real = sqlite_verify_blocks.decode_block

    def counting(data: bytes):
        block = real(data)
        decoded_firsts.append(block.rows[0][SEQ])
        return block
    monkeypatch.setattr(sqlite_verify_blocks, "decode_block", counting)
    main = sqlite3.connect(path / "events.db")
    rows = sqlite_verify._event_rows(main, str(path / "events.db"), True, {}, sqlite_verify.ChainFailures())
    seq_at = sqlite_verify._SEQ
    seen = 0
    for row in rows:
        seen += 1
        assert decoded_firsts == [first for first in firsts if first <= row[seq_at]], row[seq_at]
    main.close()
    assert seen == len(HOSTS) * ROUNDS * EACH and decoded_firsts == firsts


def test_overlapping_blocks_past_the_held_rows_are_read_a_chunk_at_a_time(interleaved, monkeypatch):
    """Rows held at once stay near MAX_HELD_ROWS however many blocks overlap (a chunk of
    MIN_CHUNK more per block at worst), and the chain is still one and its changes named."""
    path, key = interleaved
    monkeypatch.setattr(sqlite_verify_blocks, "MAX_HELD_ROWS", 20)
    monkeypatch.setattr(sqlite_verify_blocks, "MIN_CHUNK", 8)
    loaded: list[int] = []
    real = sqlite_verify_blocks._chunk

    def counting(*args):
        loaded.append(real(*args))
        return loaded[-1]
    monkeypatch.setattr(sqlite_verify_blocks, "_chunk", counting)
    main = sqlite3.connect(path / "events.db")
    rows = sqlite_verify._event_rows(main, str(path / "events.db"), True, {}, sqlite_verify.ChainFailures())
    peak = 0
    for yielded, _ in enumerate(rows, start=1):
        peak = max(peak, sum(loaded) - yielded + 1)
    main.close()
    total = len(HOSTS) * ROUNDS * EACH
    assert sum(loaded) == total and len(loaded) > len(HOSTS)       # every row once, blocks decoded again
    assert peak <= 20 + len(HOSTS) * 8
    report = verify_db(str(path), key.public_key())
    assert (report.events, report.checkpoints) == (total, total // 10)
    rewrite_blocks(path, at(97, lambda row: row.__setitem__(LEVEL, 2)))
    with pytest.raises(Tampered) as caught:
        verify_db(str(path), key.public_key())
    assert caught.value.seq == 97
