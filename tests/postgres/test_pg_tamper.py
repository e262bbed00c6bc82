"""Tamper evidence on a PostgreSQL cluster store: two collectors' chains, signed with their own
keys, a partition dropped by retention, then each tamper kind tested for SQLite applied to a copy
of the database; `fleetlog verify --dsn` names the chain and its first bad seq."""

from __future__ import annotations

import json

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.store import pg_schema
from fleetlog.collector.store.postgres import PostgresStore
from fleetlog.common import chain
from fleetlog.common.checkpoints import PURGE_ACTION, Checkpoint, key_id, public_pem
from tests.harness import run_cli
from tests.unit.store_helpers import incoming

EVENTS = 75
EVERY = 10
DAY0 = 1_764_547_200_000_000          # 2025-12-01 00:00 UTC
OLD = DAY0 - 10 * pg_schema.DAY_US


def _sign(key: Ed25519PrivateKey, collector: str, seq: int, link: bytes) -> tuple:
    cp = Checkpoint(collector, seq, link.hex(), DAY0, key_id(key.public_key())).signed(key)
    return (cp.seq, cp.key_id, cp.collector, cp.chain_hash, cp.time, cp.signature)


def _checkpointer(key: Ed25519PrivateKey, collector: str):
    def sign(first: int, links: list[bytes], last: int) -> list[tuple]:
        return [_sign(key, collector, seq, links[seq - first])
                for seq in range(max(last + EVERY, first), first + len(links), EVERY)
                if seq - last >= EVERY or seq == first]
    return sign


def _purge_event(collector: str, covered: str, result) -> object:
    event = incoming(collector, "collector:internal", [10_000 + len(result.ranges)], time_us=[DAY0],
                     actions=[PURGE_ACTION], tier="security")
    event.fields_json = [json.dumps({"chain": covered, "seq_ranges": [list(r) for r in result.ranges],
                                     "anchors_sha256": result.anchors_sha256})]
    return event


@pytest.fixture(scope="module")
def cluster_db(pg_server, tmp_path_factory):
    """A signed two-chain store; c2's oldest events were dropped with their partition by c1,
    which recorded the purge in its own chain."""
    dsn = pg_server.create_database()
    keys = {"c1": Ed25519PrivateKey.generate(), "c2": Ed25519PrivateKey.generate()}
    folder = tmp_path_factory.mktemp("keys")
    stores = {name: PostgresStore(dsn, name) for name in keys}
    try:
        for name, store in stores.items():
            store.checkpointer = _checkpointer(keys[name], name)
            store.add_signing_key(key_id(keys[name].public_key()), public_pem(keys[name].public_key()), 0, DAY0)
            (folder / f"{name}.pub").write_text(public_pem(keys[name].public_key()))
        for start in range(1, EVENTS + 1, 25):
            positions = list(range(start, start + 25))
            for name, store in stores.items():
                times = [OLD + p if name == "c2" and p <= 5 else DAY0 + p for p in positions]
                store.store_batch([incoming(f"web-{name}", "k1", positions, time_us=times,
                                            messages=[f"msg {p} ünï\"q" for p in positions])], DAY0)
        dropped = stores["c1"].drop_expired("general", DAY0 - pg_schema.DAY_US, {}).other_chains
        assert dropped["c2"].ranges == [(1, 5)]
        stores["c1"].store_batch([_purge_event("c1", "c2", dropped["c2"])], DAY0)
        for name, store in stores.items():
            store.add_checkpoint(_sign(keys[name], name, store.last_seq, store.chain_head))
    finally:
        for store in stores.values():
            store.close()
    try:
        yield dsn, folder
    finally:
        pg_server.drop_database(dsn)


@pytest.fixture
def copy(cluster_db, pg_server):
    """A copy of the signed database (CREATE DATABASE ... TEMPLATE) for one tamper."""
    dsn, folder = cluster_db
    name = "tamper_" + dsn.rsplit("_", 1)[1] + "_" + str(id(object()))[-6:]
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {dsn.rsplit('/', 1)[1]}")
    target = pg_server.dsn(name)
    try:
        yield target, folder
    finally:
        pg_server.drop_database(target)


def tamper(dsn: str, *statements) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(*statement) if isinstance(statement, tuple) else conn.execute(statement)


def verify(dsn: str, folder, *extra: str):
    return run_cli("verify", "--dsn", dsn, "--public-key", str(folder / "c1.pub"),
                   "--public-key", str(folder / "c2.pub"), *extra)


def test_untouched_cluster_store_verifies(cluster_db):
    dsn, folder = cluster_db
    result = verify(dsn, folder)
    assert result.returncode == 0, result.stderr
    # c1: 75 events + the purge record; c2: 75 - 5 dropped. Checkpoints: 7 + head per chain
    assert result.stdout.strip() == f"OK: {EVENTS + 1 + EVENTS - 5} events, 16 checkpoints, 2 chains"


def test_without_keys_the_recorded_ones_are_used_and_said(cluster_db):
    dsn, _ = cluster_db
    result = run_cli("verify", "--dsn", dsn)
    assert result.returncode == 0, result.stderr
    assert "no --public-key given" in result.stderr


def _fails(dsn, folder, expected: str) -> None:
    result = verify(dsn, folder)
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    assert result.stderr.startswith(f"fleetlog verify: {expected}"), result.stderr


def test_changed_row(copy):
    tamper(copy[0], "UPDATE events SET message = 'nothing happened' WHERE chain = 'c2' AND seq = 33")
    _fails(*copy, "chain c2: seq 33: the event does not match its chain link")


def test_deleted_row(copy):
    tamper(copy[0], "DELETE FROM events WHERE chain = 'c1' AND seq = 47")
    _fails(*copy, "chain c1: seq 47: missing")


def test_inserted_row(copy):
    tamper(copy[0], "UPDATE events SET seq = seq + 1 WHERE chain = 'c2' AND seq >= 20",
           "INSERT INTO events SELECT chain, 20, origin, 100000, id, time, received_at, host, host_ip, collector,"
           " namespace, source, log_type, app, pid, level, request_id, \"user\", action, 'injected', fields, tier,"
           " truncated, hash FROM events WHERE chain = 'c2' AND seq = 19")
    _fails(*copy, "chain c2: seq 20: the event does not match its chain link")


def test_reordered_rows(copy):
    tamper(copy[0], "UPDATE events SET seq = -1 WHERE chain = 'c1' AND seq = 21",
           "UPDATE events SET seq = 21 WHERE chain = 'c1' AND seq = 22",
           "UPDATE events SET seq = 22 WHERE chain = 'c1' AND seq = -1")
    _fails(*copy, "chain c1: seq 21:")


def test_changed_checkpoint(copy):
    tamper(copy[0], "UPDATE checkpoints SET time = time + 1 WHERE chain = 'c2' AND seq = 30")
    _fails(*copy, "chain c2: seq 30: checkpoint signature by key")


def test_truncated_tail(copy):
    tamper(copy[0], "DELETE FROM events WHERE chain = 'c2' AND seq > 65")
    _fails(*copy, "chain c2: seq 66: missing")


def test_changed_purge_anchor(copy):
    tamper(copy[0], "UPDATE chain_anchors SET link = '\\x00' WHERE chain = 'c2' AND seq = 5")
    _fails(*copy, "chain c2: seq ")


def test_a_gap_no_purge_record_covers(copy):
    """An anchor forged for a deleted row hides the gap from the links, not from the purge records."""
    tamper(copy[0], "INSERT INTO chain_anchors SELECT chain, seq, hash FROM events WHERE chain = 'c1' AND seq = 47",
           "DELETE FROM events WHERE chain = 'c1' AND seq = 47")
    _fails(*copy, "chain c1: seq 47: missing: deleted outside any recorded retention purge")


def test_two_bad_chains_are_both_named(copy):
    tamper(copy[0], "UPDATE events SET message = 'x' WHERE chain = 'c1' AND seq = 12",
           "UPDATE events SET message = 'y' WHERE chain = 'c2' AND seq = 14")
    result = verify(*copy)
    assert result.returncode == 1
    assert [line.split(":")[1].strip() for line in result.stderr.splitlines()] == ["chain c1", "chain c2"]


def test_links_recomputed_cannot_be_resigned(copy):
    dsn = copy[0]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE events SET message = 'rewritten' WHERE chain = 'c1' AND seq = 33")
        link = chain.GENESIS
        columns = ", ".join(f'"{k}"' for k in chain.CANONICAL_KEYS)
        for row in conn.execute(f"SELECT {columns} FROM events WHERE chain = 'c1' ORDER BY seq").fetchall():
            link = chain.extend(link, chain.canonical_values(row))
            conn.execute("UPDATE events SET hash = %s WHERE chain = 'c1' AND seq = %s",
                         (link, row[chain.CANONICAL_KEYS.index("seq")]))
        conn.execute("UPDATE chains SET head = %s WHERE chain = 'c1'", (link,))
    _fails(*copy, "chain c1: seq 40: the events do not match the signed checkpoint")
