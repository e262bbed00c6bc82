"""Tamper evidence on real SQLite files: a store signed by collector.signing, copied, tampered with
in each way an attacker with write access to the file could, and checked by `fleetlog verify`."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.internal import InternalEvent, append_internal
from fleetlog.collector.signing import Signer
from fleetlog.collector.store.sqlite import SqliteStore, anchors_digest
from fleetlog.collector.store.sqlite_verify import verify_db
from fleetlog.common import chain
from fleetlog.common.checkpoints import PURGE_ACTION, Checkpoint, key_id, public_pem
from fleetlog.common.verify import Tampered
from tests.harness import run_cli
from tests.unit.store_helpers import event_rows, incoming, partition_conn

EVENTS = 75
EVERY = 10


def build_store(path: pathlib.Path, key: Ed25519PrivateKey, signed_head: bool = True) -> SqliteStore:
    store = SqliteStore(path / "events.db", collector="c1")
    Signer(key, "c1", EVERY).attach(store)
    for start in range(1, EVENTS + 1, 25):
        positions = list(range(start, start + 25))
        store.store_batch([incoming("web-1", "k1", positions, messages=[f"msg {p} ünï\"q" for p in positions],
                                    users=["alice" if p % 3 else "" for p in positions])], 1_700_000_000_000_000)
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


def tamper(path: pathlib.Path, *statements: tuple) -> None:
    conn = partition_conn(path / "events.db")
    for statement in statements:
        conn.execute(*statement) if isinstance(statement, tuple) else conn.execute(statement)
    conn.commit()
    conn.close()


def failure(path: pathlib.Path, key: Ed25519PrivateKey) -> Tampered:
    with pytest.raises(Tampered) as caught:
        verify_db(str(path), key.public_key())
    return caught.value


def test_untouched_store_verifies_through_the_cli(signed):
    path, _ = signed
    result = run_cli("verify", "--db", str(path), "--public-key", str(path / "signing.pub"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"OK: {EVENTS} events, {EVENTS // EVERY + 1} checkpoints"


def test_changed_message_is_named_by_seq(copy, signed):
    tamper(copy, "UPDATE events SET message = 'nothing happened' WHERE seq = 33")
    result = run_cli("verify", "--db", str(copy), "--public-key", str(copy / "signing.pub"))
    assert result.returncode == 1
    assert result.stderr.startswith("fleetlog verify: seq 33: the event does not match its chain link")
    assert result.stdout == ""


def test_changed_level_is_caught(copy, signed):
    tamper(copy, "UPDATE events SET level = 3 WHERE seq = 12")
    assert failure(copy, signed[1]).seq == 12


def test_changed_message_with_recomputed_links_is_caught_by_the_next_checkpoint(copy, signed):
    """An attacker who also rewrites every stored link (and the head) still cannot re-sign."""
    conn = partition_conn(copy / "events.db")
    conn.execute("UPDATE events SET message = 'rewritten' WHERE seq = 33")
    link = chain.GENESIS
    for row in conn.execute(f"SELECT {', '.join(chain.CANONICAL_KEYS)} FROM events ORDER BY seq").fetchall():
        link = chain.extend(link, chain.canonical_values(row))
        conn.execute("UPDATE events SET hash = ? WHERE seq = ?", (link, row[chain.CANONICAL_KEYS.index("seq")]))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'chain_head'", (link.hex(),))
    conn.commit()
    conn.close()
    error = failure(copy, signed[1])
    assert error.seq == 40 and "after seq 30 and up to 40" in error.reason


def test_deleted_row_is_caught(copy, signed):
    tamper(copy, "DELETE FROM events WHERE seq = 47")
    error = failure(copy, signed[1])
    assert (error.seq, error.reason.split(":")[0]) == (47, "missing")


def test_deleted_row_with_a_forged_anchor_is_caught(copy, signed):
    """The anchor hides the gap from the chain, but no chained purge event recorded it."""
    tamper(copy, "INSERT INTO chain_anchors(seq, link) SELECT seq, hash FROM events WHERE seq = 47",
           "DELETE FROM events WHERE seq = 47")
    error = failure(copy, signed[1])
    assert error.seq == 47 and "outside any recorded retention purge" in error.reason


def test_inserted_row_is_caught(copy, signed):
    """Seqs are gapless, so an insert in the middle renumbers what follows."""
    tamper(copy, "UPDATE events SET seq = seq + 1000 WHERE seq >= 20",
           "UPDATE events SET seq = seq - 999 WHERE seq >= 1000",
           "INSERT INTO events(seq, origin, pos, id, time, received_at, host, level, message, tier, hash) "
           "SELECT 20, origin, 100000, id, time, received_at, host, level, 'injected', tier, hash FROM events WHERE seq = 19")
    assert failure(copy, signed[1]).seq == 20


def test_row_appended_after_the_head_is_caught(copy, signed):
    conn = partition_conn(copy / "events.db")
    row = conn.execute(f"SELECT {', '.join(chain.CANONICAL_KEYS)}, hash FROM events WHERE seq = {EVENTS}").fetchone()
    values = dict(zip(chain.CANONICAL_KEYS, row))
    values.update(seq=EVENTS + 1, message="appended")
    link = chain.extend(row[-1], chain.canonical_bytes(values))
    conn.execute("INSERT INTO events(seq, origin, pos, id, time, received_at, host, level, message, tier, hash, "
                 "host_ip, collector, namespace, source, log_type, user, truncated) SELECT ?, origin, 99999, id, time, "
                 "received_at, host, level, ?, tier, ?, host_ip, collector, namespace, source, log_type, user, truncated "
                 "FROM events WHERE seq = ?", (EVENTS + 1, "appended", link, EVENTS))
    conn.commit()
    conn.close()
    error = failure(copy, signed[1])
    assert error.seq == EVENTS + 1 and "appended after the fact" in error.reason


def test_swapped_rows_are_caught(copy, signed):
    tamper(copy, "UPDATE events SET seq = -1 WHERE seq = 21", "UPDATE events SET seq = 21 WHERE seq = 22",
           "UPDATE events SET seq = 22 WHERE seq = -1")
    assert failure(copy, signed[1]).seq == 21


def test_truncated_signed_tail_is_caught(copy, signed):
    tamper(copy, "DELETE FROM events WHERE seq > 65")
    error = failure(copy, signed[1])
    assert error.seq == 66 and "missing" in error.reason


def test_truncated_unsigned_tail_after_the_last_checkpoint_is_caught(tmp_path):
    """Events after the last checkpoint are held to the head the store recorded."""
    key = Ed25519PrivateKey.generate()
    build_store(tmp_path, key, signed_head=False).close()   # checkpoints at 10..70; 71..75 unsigned
    assert verify_db(str(tmp_path), key.public_key()).unsigned == 5
    tamper(tmp_path, "DELETE FROM events WHERE seq > 72")
    error = failure(tmp_path, key)
    assert error.seq == 73 and "tail removed" in error.reason


def test_checkpoint_forged_with_another_key_is_caught(copy, signed):
    forger = Ed25519PrivateKey.generate()
    conn = partition_conn(copy / "events.db")
    conn.execute("UPDATE events SET message = 'forged' WHERE seq = 55")
    link = chain.GENESIS
    for row in conn.execute(f"SELECT {', '.join(chain.CANONICAL_KEYS)} FROM events ORDER BY seq").fetchall():
        link = chain.extend(link, chain.canonical_values(row))
        seq = row[chain.CANONICAL_KEYS.index("seq")]
        conn.execute("UPDATE events SET hash = ? WHERE seq = ?", (link, seq))
        if seq % EVERY == 0 and seq >= 50 or seq == EVENTS:
            cp = Checkpoint("c1", seq, link.hex(), 1, key_id(forger.public_key())).signed(forger)
            conn.execute("DELETE FROM checkpoints WHERE seq = ?", (seq,))
            conn.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                         (cp.seq, cp.key_id, cp.collector, cp.chain_hash, cp.time, cp.signature))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'chain_head'", (link.hex(),))
    conn.execute("INSERT INTO signing_keys VALUES (?, ?, 50, 1)", (key_id(forger.public_key()), public_pem(forger.public_key())))
    conn.commit()
    conn.close()
    error = failure(copy, signed[1])
    assert error.seq == 50 and f"signed by key {key_id(forger.public_key())}" in error.reason


def test_altered_checkpoint_signature_is_caught(copy, signed):
    tamper(copy, "UPDATE checkpoints SET time = time + 1 WHERE seq = 30")
    error = failure(copy, signed[1])
    assert error.seq == 30 and "signature" in error.reason


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
    tamper(tmp_path, "UPDATE chain_anchors SET link = zeroblob(32) WHERE seq = 30")
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
