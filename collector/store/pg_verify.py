"""`fleetlog verify --dsn DSN`: the tamper evidence of every chain of a PostgreSQL cluster store.

Each collector's chain is checked as a SQLite store is (common/verify.py): links recomputed from
the stored values, gaps continued by anchors and covered by a chained purge record, checkpoints
signed by a trusted key over the recomputed link, the events ending at the head the chains table
records. A purge record may stand in another chain than the events it removed (whichever
collector dropped a partition records it); its `chain` field names the chain it covers.

Trusted keys: the public keys the operator gives (each collector's signing.pub), plus what a
covered rotation event vouches for. Without any, the keys the database records for each chain
are used — that catches accidental damage and edits by anyone who cannot also replace keys and
re-sign, and verify says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleetlog.collector.store.pg_dsn import CONNECT_TIMEOUT, mask_dsn, scalar
from fleetlog.common import chain
from fleetlog.common.checkpoints import Checkpoint, KeyFileError, key_id, parse_public_pem
from fleetlog.common.errors import StorageError
from fleetlog.common.verify import (
    ChainFailures,
    ChainWalk,
    Report,
    Tampered,
    check_checkpoints,
    check_head,
    check_purges,
    walk_chain,
)

_COLUMNS = ", ".join('"user"' if k == "user" else k for k in chain.CANONICAL_KEYS) + ", hash"


@dataclass
class ClusterReport:
    chains: dict[str, Report] = field(default_factory=dict)
    failures: dict[str, Tampered] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(r.events for r in self.chains.values())

    @property
    def checkpoints(self) -> int:
        return sum(r.checkpoints for r in self.chains.values())

    def summary(self) -> str:
        return f"OK: {self.events} events, {self.checkpoints} checkpoints, {len(self.chains)} chains"

    def unsigned_notes(self) -> list[str]:
        return [f"chain {name}: {report.unsigned} events after seq {report.last_checkpoint_seq} (the last checkpoint) "
                "are chained but not signed yet" for name, report in sorted(self.chains.items()) if report.unsigned]

    def failure_lines(self) -> list[str]:
        return [f"chain {name}: {failure}" for name, failure in sorted(self.failures.items())]


def verify_dsn(dsn: str, public_keys: list[Ed25519PublicKey]) -> ClusterReport:
    try:
        with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.read_only = True
            return _verify(conn, public_keys)
    except psycopg.Error as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise StorageError(f"--dsn {mask_dsn(dsn)}: {first}") from None


def _verify(conn: psycopg.Connection, public_keys: list[Ed25519PublicKey]) -> ClusterReport:
    cluster = ClusterReport()
    if not scalar(conn, "SELECT to_regclass('chains') IS NOT NULL"):
        raise StorageError("--dsn: not a fleetlog database (no chains table)")
    heads = conn.execute("SELECT chain, last_seq, head FROM chains ORDER BY chain").fetchall()
    walks: dict[str, tuple[ChainWalk, ChainFailures, Report, dict[int, bytes], list[Checkpoint]]] = {}
    purges_for: dict[str, list[tuple[int, list[tuple[int, int]], str]]] = {}
    for name, head_seq, head in heads:
        report, failures = Report(), ChainFailures()
        anchors = {seq: bytes(link) for seq, link in conn.execute(
            "SELECT seq, link FROM chain_anchors WHERE chain = %s", (name,))}
        checkpoints = [Checkpoint(*row) for row in conn.execute(
            "SELECT collector, seq, chain_hash, time, key_id, signature FROM checkpoints WHERE chain = %s"
            " ORDER BY seq, key_id", (name,))]
        wanted = {cp.seq for cp in checkpoints}
        with conn.cursor(name="fleetlog_verify") as cur:
            cur.itersize = 5000
            cur.execute(f"SELECT {_COLUMNS} FROM events WHERE chain = %s ORDER BY seq", (name,))
            walk = walk_chain(cur, anchors, wanted, failures, report)
        if walk.whole:
            check_head(walk.expected - 1, walk.link, head_seq, bytes(head).hex() if head_seq else "", anchors,
                        walk.gaps, wanted, walk.links, failures)
        for seq, fields_json in walk.purge_fields:
            try:
                target = json.loads(fields_json or "{}").get("chain") or name
            except ValueError:
                target = name
            record = next(p for p in walk.purges if p[0] == seq)
            purges_for.setdefault(str(target), []).append(record)
        walks[name] = (walk, failures, report, anchors, checkpoints)

    for name, head_seq, _ in heads:
        walk, failures, report, anchors, checkpoints = walks[name]
        if failures.first is None:
            check_purges(walk.gaps, purges_for.get(name, []), anchors, failures)
        trusted = {key_id(k): k for k in public_keys}
        if not public_keys:
            trusted = _recorded_keys(conn, name)
        check_checkpoints(checkpoints, walk.links, walk.rotations, trusted, failures, report)
        if failures.first is None and report.events and not report.checkpoints:
            failures.add(1 if not walk.gaps else walk.gaps[0][1] + 1, "no signed checkpoint covers the events")
        if failures.first is not None:
            cluster.failures[name] = failures.first
        report.unsigned = max(0, head_seq - report.last_checkpoint_seq)
        cluster.chains[name] = report
    if not public_keys:
        cluster.notes.append("no --public-key given: each chain was checked against the public keys the database "
                             "records, which proves nothing against someone who can also replace those keys")
    return cluster


def _recorded_keys(conn: psycopg.Connection, name: str) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for (pem,) in conn.execute("SELECT public_key FROM signing_keys WHERE chain = %s ORDER BY first_seq LIMIT 1",
                               (name,)):
        try:
            key = parse_public_pem(pem)
        except KeyFileError:
            continue
        keys[key_id(key)] = key
    return keys
