"""Whatever values an event carries come back out of the blocks as they went in (the writer's
blocks in place of the row inserts of collector/store/_sqlite_native.c): controls and NUL, quotes,
non-ASCII of 2, 3 and 4 UTF-8 bytes, a 10 MB line, pids up to 2**62, times either side of the
partition's start; the chain verifies; and a file that refuses writes is a fault the writer waits
out, named as SQLite names it."""

from __future__ import annotations

import random
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.signing import Signer
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.collector.store.sqlite_verify import verify_db
from fleetlog.collector.writer import is_transient
from fleetlog.common.errors import StorageError
from tests.unit.store_helpers import event_rows, incoming

NOW = 1_700_000_000_000_000
ALPHABET = [chr(c) for c in range(0x80)] + ["é", "ß", "✓", "€", "\u2028", "\ufffd", "😀", "𝄞", "\r\n"]


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
            users=[rng.choice(["", "alice", "bob é", "\x00"]) for _ in positions],
            pids=[rng.choice([0, 1, 2**31, 2**62]) for _ in positions],
            request_ids=[rng.choice(["", "r\x001", '"q"']) for _ in positions],
            time_us=[NOW + rng.randint(-10**11, 10**11) for _ in positions],
            tier=rng.choice(["general", "security"])))
    return batches


@pytest.mark.parametrize("seed", [1, 2])
def test_every_value_comes_back_as_it_went_in_and_the_chain_verifies(tmp_path, seed):
    key = Ed25519PrivateKey.generate()
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    Signer(key, "c1", 100).attach(store)
    batches = _random_batches(seed)
    store.store_batch(batches, NOW)
    expected = sorted(
        (batch.host, pos, message, user or None, pid or None, request_id or None, time_us, batch.tier[0])
        for batch in batches
        for pos, message, user, pid, request_id, time_us in zip(
            batch.position, batch.message, batch.user, batch.pid, batch.request_id, batch.time_us))
    stored = sorted(event_rows(store, "SELECT host, pos, message, user, pid, request_id, time, tier FROM events"))
    assert stored == expected
    Signer(key, "c1", 100).checkpoint_head(store)
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == len(expected)


def test_a_file_that_refuses_writes_is_a_storage_fault_the_writer_waits_out(tmp_path):
    """The writer holds and retries a batch on SQLITE_READONLY / SQLITE_IOERR / SQLITE_FULL
    (collector/writer.py is_transient): a partition's blocks that cannot be written say so."""
    store = SqliteStore(tmp_path / "events.db", collector="c1")
    store.store_batch([incoming("web-1", "a.log", [1])], NOW)
    [part] = store.partitions()
    store.partition_conn(part.name).execute("PRAGMA query_only=1")
    with pytest.raises(StorageError) as caught:
        store.store_batch([incoming("web-1", "a.log", [2])], NOW)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert caught.value.__cause__.sqlite_errorname == "SQLITE_READONLY"
    assert is_transient(caught.value)
    store.partition_conn(part.name).execute("PRAGMA query_only=0")
    [result] = store.store_batch([incoming("web-1", "a.log", [2])], NOW)
    assert (result.stored, result.first_seq) == (1, 2)
    store.close()
