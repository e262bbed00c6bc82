"""Tamper evidence on real SQLite files: a store signed by collector.signing, copied, tampered with
in each way an attacker with write access to the files could — its blocks decoded, changed and
encoded again with the links they stored (tests/unit/tamper_helpers.py), rows of a store not yet
converted — and checked by `fleetlog verify`."""

from __future__ import annotations

import json
import pathlib
import shutil
import sqlite3

import pytest
import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.internal import InternalEvent, append_internal
from fleetlog.collector.signing import Signer
from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.blocks import HASH, LINK_PREFIX, SEQ, encode_block, fill_ids
from fleetlog.collector.store.sqlite import SqliteStore, anchors_digest
from fleetlog.collector.store.sqlite_blocks import insert_block
from fleetlog.collector.store.sqlite_verify import verify_db
from fleetlog.common import chain
from fleetlog.common.checkpoints import PURGE_ACTION, Checkpoint, key_id, public_pem
from fleetlog.common.verify import Tampered
from tests.harness import run_cli
from tests.unit.store_helpers import event_rows, incoming, source_keys_of
from tests.unit.tamper_helpers import (
    LEVEL,
    MESSAGE,
    POS,
    at,
    block_ids,
    decoded,
    main_conn,
    part_conn,
    relink,
    rewrite_blocks,
    to_row_model,
    whole_links,
    without,
    write_block,
)

EVENTS = 75
EVERY = 10


def build_store(path: pathlib.Path, key: Ed25519PrivateKey, signed_head: bool = True) -> SqliteStore:
    store = SqliteStore(path / "events.db", collector="c1")
    Signer(key, "c1", EVERY).attach(store)
    for start in range(1, EVENTS + 1, 25):
        positions = list(range(start, start + 25))
        store.store_batch([incoming("web-1", "k1", positions, messages=[f"msg {p} ünï\"q" for p in positions],
                                    users=["alice" if p % 3 else "" for p in positions],
                                    request_ids=[f"req-{p // 5}" for p in positions])], 1_700_000_000_000_000)
    if signed_head:
        Signer(key, "c1", EVERY).checkpoint_head(store)
    return store


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A closed, fully signed store (75 events, checkpoints at 10..70 and 75) and its key."""
    path = tmp_path_factory.mktemp("signed")
    key = Ed25519PrivateKey.generate()
    build_store(path, key).close()
    (path / "signing.pub").write_text(public_pem(key.public_key()))
    return path, key


@pytest.fixture
def copy(signed, tmp_path):
    source, _ = signed
    target = tmp_path / "copy"
    shutil.copytree(source, target)
    return target


def main_tamper(path: pathlib.Path, *statements: str) -> None:
    """SQL on the main file (checkpoints, anchors, meta)."""
    conn = main_conn(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def failure(path: pathlib.Path, key: Ed25519PrivateKey) -> Tampered:
    with pytest.raises(Tampered) as caught:
        verify_db(str(path), key.public_key())
    return caught.value


def set_column(column: int, value):
    return lambda row: row.__setitem__(column, value)


def block_holding(path: pathlib.Path, seq: int) -> tuple[int, int, int]:
    """(id, min_seq, max_seq) of the block holding `seq` in the biggest partition."""
    conn = part_conn(path)
    for block_id in block_ids(conn):
        if any(row[SEQ] == seq for row in decoded(conn, block_id).rows):
            found = conn.execute("SELECT id, min_seq, max_seq FROM blocks WHERE id = ?", (block_id,)).fetchone()
            conn.close()
            return found
    raise AssertionError(f"no block holds seq {seq}")


def test_untouched_store_verifies_through_the_cli(signed):
    path, _ = signed
    conn = part_conn(path)
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "blocks" in tables and "events" not in tables      # the events are in blocks
    assert conn.execute("SELECT sum(count) FROM blocks").fetchone()[0] == EVENTS
    conn.close()
    result = run_cli("verify", "--db", str(path), "--public-key", str(path / "signing.pub"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"OK: {EVENTS} events, {EVENTS // EVERY + 1} checkpoints"


def test_changed_message_is_named_by_seq(copy, signed):
    rewrite_blocks(copy, at(33, set_column(MESSAGE, "nothing happened")))
    result = run_cli("verify", "--db", str(copy), "--public-key", str(copy / "signing.pub"))
    assert result.returncode == 1
    assert result.stderr.startswith("fleetlog verify: seq 33: the event does not match its chain link")
    assert result.stdout == ""


def test_changed_level_is_caught(copy, signed):
    rewrite_blocks(copy, at(12, set_column(LEVEL, 3)))
    assert failure(copy, signed[1]).seq == 12


def test_changed_message_with_recomputed_links_is_caught_by_the_next_checkpoint(copy, signed):
    """An attacker who also rewrites every stored link (and the head) still cannot re-sign."""
    relink(copy, at(33, set_column(MESSAGE, "rewritten")))
    error = failure(copy, signed[1])
    assert error.seq == 40 and "after seq 30 and up to 40" in error.reason


def test_deleted_event_is_caught(copy, signed):
    rewrite_blocks(copy, without(lambda seq: seq != 47))
    error = failure(copy, signed[1])
    assert (error.seq, error.reason.split(":")[0]) == (47, "missing")


def test_deleted_block_is_named_by_its_first_seq(copy, signed):
    block_id, first, _ = block_holding(copy, 47)
    conn = part_conn(copy)
    conn.execute("DELETE FROM blocks WHERE id = ?", (block_id,))
    conn.commit()
    conn.close()
    error = failure(copy, signed[1])
    assert error.seq == first and error.reason.startswith("missing")


def test_deleted_event_with_a_forged_anchor_is_caught(copy, signed):
    """The anchor (the whole link, recomputed from the stored values) hides the gap from the chain,
    but no chained purge event recorded it."""
    conn = main_conn(copy)
    conn.execute("INSERT INTO chain_anchors(seq, link) VALUES (47, ?)", (whole_links(copy)[47],))
    conn.commit()
    conn.close()
    rewrite_blocks(copy, without(lambda seq: seq != 47))
    error = failure(copy, signed[1])
    assert error.seq == 47 and "outside any recorded retention purge" in error.reason


def test_altered_link_before_a_run_is_named(copy, signed):
    """The whole link a block keeps before each run (what a purge inside it would anchor) is held
    to the chain, though no event's own link changed."""
    _, first, last = block_holding(copy, 47)
    conn = part_conn(copy)
    [block_id] = [block_id for block_id in block_ids(conn) if decoded(conn, block_id).runs[0].start == first]
    rows = decoded(conn, block_id).rows
    write_block(conn, block_id, rows, lambda start: bytes(32))
    conn.commit()
    conn.close()
    error = failure(copy, signed[1])
    reason = f"the block holding seqs {first}-{last} records a chain link before seq {first} that is not the chain's (altered)"
    assert (error.seq, error.reason) == (first, reason)


def test_inserted_event_is_caught(copy, signed):
    """Seqs are gapless, so an insert in the middle renumbers what follows."""
    def insert(rows):
        changed = []
        for row in rows:
            if row[SEQ] >= 20:
                row[SEQ] += 1
            changed.append(row)
            if row[SEQ] == 19:
                injected = list(row)
                injected[SEQ], injected[POS], injected[MESSAGE] = 20, 100000, "injected"
                changed.append(injected)       # with the stored link of 19
        return changed
    rewrite_blocks(copy, insert)
    assert failure(copy, signed[1]).seq == 20


def appended_row(path: pathlib.Path) -> list:
    """An event after the head, chained properly onto the last one."""
    conn = part_conn(path)
    [last] = [row for block_id in block_ids(conn) for row in decoded(conn, block_id).rows if row[SEQ] == EVENTS]
    conn.close()
    row = list(last)
    row[SEQ], row[POS], row[MESSAGE] = EVENTS + 1, 99999, "appended"
    with_id = list(row)
    main = main_conn(path)
    fill_ids([with_id], source_keys_of(main))
    main.close()
    row[HASH] = chain.extend(whole_links(path)[EVENTS],
                             chain.canonical_values([with_id[ROW_COLUMNS.index(k)] for k in chain.CANONICAL_KEYS]))
    return row


@pytest.mark.parametrize("where", ["in the last block", "as a block of its own"])
def test_event_appended_after_the_head_is_caught(copy, signed, where):
    row = appended_row(copy)
    if where == "in the last block":
        rewrite_blocks(copy, lambda rows: rows + [row] if rows[-1][SEQ] == EVENTS else rows)
    else:
        conn = part_conn(copy)
        insert_block(conn, encode_block([row], lambda seq: whole_links(copy)[seq - 1]))
        conn.commit()
        conn.close()
    error = failure(copy, signed[1])
    assert error.seq == EVENTS + 1 and "appended after the fact" in error.reason


def test_swapped_events_are_caught(copy, signed):
    def swap(rows):
        seqs = [row[SEQ] for row in rows]
        if 21 in seqs and 22 in seqs:
            i, j = seqs.index(21), seqs.index(22)
            rows[i], rows[j] = rows[j], rows[i]
            rows[i][SEQ], rows[j][SEQ] = 21, 22      # each keeps its stored link
        return rows
    rewrite_blocks(copy, swap)
    assert failure(copy, signed[1]).seq == 21


def test_moved_event_is_caught(copy, signed):
    """Event 21 moved after 23: 22 and 23 move up a seq."""
    def move(rows):
        seqs = [row[SEQ] for row in rows]
        if 21 in seqs:
            i = seqs.index(21)
            moved = rows.pop(i)
            rows.insert(i + 2, moved)
            for seq, row in zip((21, 22, 23), rows[i:i + 3], strict=True):
                row[SEQ] = seq
        return rows
    rewrite_blocks(copy, move)
    assert failure(copy, signed[1]).seq == 21


def test_truncated_signed_tail_is_caught(copy, signed):
    rewrite_blocks(copy, without(lambda seq: seq <= 65))
    error = failure(copy, signed[1])
    assert error.seq == 66 and "missing" in error.reason


def test_truncated_unsigned_tail_after_the_last_checkpoint_is_caught(tmp_path):
    """Events after the last checkpoint are held to the head the store recorded."""
    key = Ed25519PrivateKey.generate()
    build_store(tmp_path, key, signed_head=False).close()   # checkpoints at 10..70; 71..75 unsigned
    assert verify_db(str(tmp_path), key.public_key()).unsigned == 5
    rewrite_blocks(tmp_path, without(lambda seq: seq <= 72))
    error = failure(tmp_path, key)
    assert error.seq == 73 and "tail removed" in error.reason


def test_checkpoint_forged_with_another_key_is_caught(copy, signed):
    forger = Ed25519PrivateKey.generate()
    links = relink(copy, at(55, set_column(MESSAGE, "forged")))
    conn = main_conn(copy)
    for seq in [*range(50, EVENTS, EVERY), EVENTS]:
        cp = Checkpoint("c1", seq, links[seq].hex(), 1, key_id(forger.public_key())).signed(forger)
        conn.execute("DELETE FROM checkpoints WHERE seq = ?", (seq,))
        conn.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                     (cp.seq, cp.key_id, cp.collector, cp.chain_hash, cp.time, cp.signature))
    conn.execute("INSERT INTO signing_keys VALUES (?, ?, 50, 1)", (key_id(forger.public_key()), public_pem(forger.public_key())))
    conn.commit()
    conn.close()
    error = failure(copy, signed[1])
    assert error.seq == 50 and f"signed by key {key_id(forger.public_key())}" in error.reason


def test_altered_checkpoint_signature_is_caught(copy, signed):
    main_tamper(copy, "UPDATE checkpoints SET time = time + 1 WHERE seq = 30")
    error = failure(copy, signed[1])
    assert error.seq == 30 and "signature" in error.reason


def _payload(path: pathlib.Path, block_id: int) -> bytes:
    conn = part_conn(path)
    (data,) = conn.execute("SELECT data FROM blocks WHERE id = ?", (block_id,)).fetchone()
    conn.close()
    return zstandard.ZstdDecompressor().decompress(bytes(data))


def _store_payload(path: pathlib.Path, block_id: int, data: bytes) -> None:
    conn = part_conn(path)
    conn.execute("UPDATE blocks SET data = ? WHERE id = ?", (data, block_id))
    conn.commit()
    conn.close()


def _header_altered(payload: bytes) -> bytes:
    size = int.from_bytes(payload[:4], "little")
    header = payload[4:4 + size].replace(b'"count": ', b'"count": 1')     # 25 events say 125
    return zstandard.ZstdCompressor().compress(len(header).to_bytes(4, "little") + header + payload[4 + size:])


CORRUPTIONS = {
    "truncated": lambda data, payload: data[:len(data) // 2],
    "not compressed": lambda data, payload: payload,
    "a byte of the compressed frame": lambda data, payload: data[:4] + bytes([data[4] ^ 0xFF]) + data[5:],
    "a count in its header": lambda data, payload: _header_altered(payload),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_unreadable_block_is_named_by_its_first_seq(copy, signed, corruption):
    block_id, first, last = block_holding(copy, 47)
    payload = _payload(copy, block_id)
    data = zstandard.ZstdCompressor().compress(payload)
    _store_payload(copy, block_id, CORRUPTIONS[corruption](data, payload))
    error = failure(copy, signed[1])
    assert (error.seq, error.reason) == (first, f"the block holding seqs {first}-{last} is not readable (altered)")


def test_altered_link_bytes_in_a_payload_are_named_by_seq(copy, signed):
    """The payload decodes, but the stored link of one event is not its own."""
    block_id, first, _ = block_holding(copy, 47)
    payload = bytearray(_payload(copy, block_id))
    size = int.from_bytes(payload[:4], "little")
    header = json.loads(payload[4:4 + size])
    section = header["columns"]["link_prefix"]["b"]
    offset = 4 + size + sum(header["sections"][:section]) + (47 - first) * LINK_PREFIX
    payload[offset] ^= 0x01
    _store_payload(copy, block_id, zstandard.ZstdCompressor().compress(bytes(payload)))
    error = failure(copy, signed[1])
    assert (error.seq, error.reason) == (47, "the event does not match its chain link (changed, inserted or moved)")


HEADER_LIES = {
    "count": "count = count - 1",
    "max_seq": "max_seq = max_seq - 1",
    "max_time": "max_time = max_time - 1",     # a search of the last microsecond would pass it by
    "min_level": "min_level = 7",              # a search of errors would pass it by
    "host": "host = 'elsewhere'",
}


@pytest.mark.parametrize("column", HEADER_LIES)
def test_block_whose_skip_columns_disagree_with_its_events_is_named(copy, signed, column):
    block_id, first, _ = block_holding(copy, 47)
    conn = part_conn(copy)
    conn.execute(f"UPDATE blocks SET {HEADER_LIES[column]} WHERE id = ?", (block_id,))
    conn.commit()
    (last,) = conn.execute("SELECT max_seq FROM blocks WHERE id = ?", (block_id,)).fetchone()
    conn.close()
    error = failure(copy, signed[1])
    assert (error.seq, error.reason) == (first, f"the block holding seqs {first}-{last} is not readable (altered)")


FILTER_LIES = {
    # The word filter emptied: a keyword search would pass the block by.
    "word filter": "UPDATE blocks SET bloom = zeroblob(length(bloom)) WHERE id = :id",
    "word filter of another type": "UPDATE blocks SET bloom = 'x' WHERE id = :id",
    # A summary that leaves the block's app out: an --app search would pass it by.
    "summary": "UPDATE blocks SET summary = json_set(summary, '$.app', json('[\"other\"]')) WHERE id = :id",
    "summary not JSON": "UPDATE blocks SET summary = '{' WHERE id = :id",
    # Its request-id and user filters emptied or gone: a lookup by either would pass it by.
    "request-id filter": "UPDATE block_keys SET requests = zeroblob(length(requests)) WHERE block = :id",
    "user filter": "UPDATE block_keys SET users = zeroblob(length(users)) WHERE block = :id",
    "key filters gone": "DELETE FROM block_keys WHERE block = :id",
}


@pytest.mark.parametrize("lie", FILTER_LIES)
def test_block_whose_search_filters_do_not_hold_its_events_is_named(copy, signed, lie):
    block_id, first, last = block_holding(copy, 47)
    conn = part_conn(copy)
    conn.execute(FILTER_LIES[lie], {"id": block_id})
    conn.commit()
    conn.close()
    error = failure(copy, signed[1])
    reason = (f"the block holding seqs {first}-{last} has search filters that do not hold its events "
              "(altered: searches would pass them by)")
    assert (error.seq, error.reason) == (first, reason)


def test_a_file_written_before_block_keys_verifies(copy, signed):
    """A partition file of the layout before block_keys: no such table, and each word filter
    holds the block's request ids and users too."""
    from fleetlog.collector.store import blocks
    conn = part_conn(copy)
    conn.execute("DROP TABLE block_keys")
    for block_id in block_ids(conn):
        rows = decoded(conn, block_id).rows
        legacy = blocks.word_and_key_bloom(list(zip(*rows)))
        conn.execute("UPDATE blocks SET bloom = ? WHERE id = ?", (legacy, block_id))
    conn.commit()
    conn.close()
    assert verify_db(str(copy), signed[1].public_key()).events == EVENTS


def test_wrong_public_key_fails_and_bad_arguments_are_usage_errors(copy, tmp_path):
    other = tmp_path / "other.pub"
    other.write_text(public_pem(Ed25519PrivateKey.generate().public_key()))
    result = run_cli("verify", "--db", str(copy), "--public-key", str(other))
    assert result.returncode == 1 and result.stderr.startswith("fleetlog verify: seq 10: checkpoint signed by key")
    for args, text in ((["verify", "--db", str(copy)], "--public-key"),
                       (["verify", "--db", str(tmp_path / "nope"), "--public-key", str(other)], "no such file"),
                       (["verify", "--db", str(copy), "--public-key", str(copy / "events.db")], "not a PEM"),
                       (["verify", "--db", str(other), "--public-key", str(other)], "--db")):
        result = run_cli(*args)
        assert result.returncode == 2 and text in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_purge_keeps_what_remains_verifiable(tmp_path):
    """A retention purge (delete_events + the chained purge record) leaves a store that verifies;
    changing a purge record's anchor afterwards does not."""
    key = Ed25519PrivateKey.generate()
    store = build_store(tmp_path, key)
    signer = Signer(key, "c1", EVERY)
    store.checkpointer = signer.in_transaction
    deleted = list(range(1, 31)) + list(range(41, 46))   # includes checkpointed seqs 10, 20, 30
    result = store.delete_events(deleted)
    anchors = store.conn.execute("SELECT seq, link FROM chain_anchors ORDER BY seq").fetchall()
    append_internal(store, "c1", [InternalEvent(PURGE_ACTION, "retention purge", fields={
        "tier": "general", "count": result.count, "seq_ranges": [list(r) for r in result.ranges],
        "anchors_sha256": anchors_digest(anchors)})])
    signer.checkpoint_head(store)
    store.close()
    report = verify_db(str(tmp_path), key.public_key())
    assert (report.events, report.checkpoints) == (EVENTS - len(deleted) + 1, 9)   # 10, 20 unlinkable but signed
    main_tamper(tmp_path, "UPDATE chain_anchors SET link = zeroblob(32) WHERE seq = 30")
    assert failure(tmp_path, key).seq == 30   # the checkpoint at 30 signed that link


def test_key_rotation_keeps_old_checkpoints_verifiable(tmp_path):
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    store = build_store(tmp_path, old)
    rotated_from = Signer(new, "c1", EVERY).attach(store)
    assert rotated_from == key_id(old.public_key())
    store.store_batch([incoming("web-1", "k1", list(range(100, 120)))], 1)
    Signer(new, "c1", EVERY).checkpoint_head(store)
    [rotation] = event_rows(store, "SELECT tier, fields FROM events WHERE action = 'Collector.SigningKey.Rotate'")
    assert rotation[0] == "permanent" and json.loads(rotation[1])["key_id"] == key_id(new.public_key())
    keys = {row[0] for row in store.conn.execute("SELECT key_id FROM signing_keys")}
    assert keys == {key_id(old.public_key()), key_id(new.public_key())}
    store.close()
    report = verify_db(str(tmp_path), new.public_key())
    assert report.events == EVENTS + 21 and report.checkpoints == EVENTS // EVERY + 1 + 3   # 85, 95 and the head
    # The old key alone does not vouch for checkpoints of a key it never endorsed.
    error = failure(tmp_path, old)
    assert error.seq == 85 and "neither the given public key" in error.reason


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path):
    result = run_cli("keygen", "--out", str(tmp_path / "keys"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "keys" / "signing.key").stat().st_mode & 0o777 == 0o600
    assert "BEGIN PUBLIC KEY" in (tmp_path / "keys" / "signing.pub").read_text()
    again = run_cli("keygen", "--out", str(tmp_path / "keys"))
    assert again.returncode == 2 and "already exists" in again.stderr


def layout(path: pathlib.Path) -> dict[str, set[str]]:
    """Partition file name -> which of `blocks` and `events` it holds."""
    found = {}
    for file in sorted((path / "partitions").glob("*.db")):
        conn = sqlite3.connect(file)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        conn.close()
        found[file.stem] = tables & {"blocks", "events"}
    return found


@pytest.fixture
def row_model(tmp_path):
    """A signed data_dir of the row model (its partition file of the old schema: a row per event
    with its whole link, and the FTS5 index), its partition file and key."""
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "row-model"
    path.mkdir()
    build_store(path, key).close()
    [partition] = (path / "partitions").glob("*.db")
    assert to_row_model(path, partition) == EVENTS
    assert layout(path) == {partition.stem: {"events"}}
    return path, partition, key


def test_row_model_store_verifies_before_its_conversion(row_model, tmp_path):
    path, _, key = row_model
    report = verify_db(str(path), key.public_key())
    assert (report.events, report.checkpoints) == (EVENTS, EVENTS // EVERY + 1)
    altered = tmp_path / "altered"
    shutil.copytree(path, altered)
    conn = part_conn(altered)
    conn.execute("UPDATE events SET message = 'nothing happened' WHERE seq = 33")
    conn.commit()
    conn.close()
    error = failure(altered, key)
    assert (error.seq, error.reason) == (33, "the event does not match its chain link (changed, inserted or moved)")


def test_row_model_store_verifies_after_its_conversion(row_model):
    path, partition, key = row_model
    SqliteStore(path / "events.db", collector="c1").close()      # converts at start
    assert layout(path) == {partition.stem: {"blocks"}}
    report = verify_db(str(path), key.public_key())
    assert (report.events, report.checkpoints) == (EVENTS, EVENTS // EVERY + 1)
    rewrite_blocks(path, at(33, set_column(MESSAGE, "nothing happened")))
    assert failure(path, key).seq == 33


def test_store_of_both_layouts_verifies_across_them(tmp_path):
    """Partition files not all converted yet: rows and blocks, their seqs interleaved, are one
    chain; a change in either is named by its seq."""
    key = Ed25519PrivateKey.generate()
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    signer = Signer(key, "c1", EVERY)
    signer.attach(store)
    day = 86_400_000_000
    for start in range(1, 61, 10):        # day 1, day 2, day 1 ...: each file holds every other ten seqs
        positions = list(range(start, start + 10))
        offset = day * (start // 10 % 2)
        store.store_batch([incoming("web-1", "k1", positions,
                                    time_us=[1_700_000_000_000_000 + offset + p for p in positions])], 1)
    signer.checkpoint_head(store)
    store.close()
    first_day, second_day = sorted((tmp_path / "partitions").glob("*.db"))
    to_row_model(tmp_path, second_day)
    assert layout(tmp_path) == {first_day.stem: {"blocks"}, second_day.stem: {"events"}}
    report = verify_db(str(tmp_path), key.public_key())
    assert (report.events, report.checkpoints) == (60, 6)

    conn = part_conn(tmp_path, second_day)
    conn.execute("UPDATE events SET level = 3 WHERE seq = 35")
    conn.commit()
    conn.close()
    assert failure(tmp_path, key).seq == 35
    rewrite_blocks(tmp_path, at(24, set_column(LEVEL, 3)), partition=first_day)
    assert failure(tmp_path, key).seq == 24
