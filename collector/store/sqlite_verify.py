"""`fleetlog verify --db PATH`: the tamper evidence of a SQLite store, read-only, without a collector.

This module reads what the store holds — the main file's meta, anchors and checkpoints, and the
events of every partition file the catalogue lists (partitions.py: their names and paths) — and
common/verify.py judges the chain. A partition file the catalogue lists but that is missing is
skipped: its events are missing, and the chain check names the first of them.

A partition file holds blocks (sqlite_verify_blocks.py reads them), or rows of the row model when
it is not converted yet (`events`); both are read, merged by seq.
"""

from __future__ import annotations

import heapq
import os
import sqlite3
from collections.abc import Generator, Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleetlog.collector.store.partitions import partition_path, read_catalogue
from fleetlog.collector.store.sqlite_verify_blocks import Item, Row, RunStart, Unreadable, block_rows, seq_of
from fleetlog.common import chain
from fleetlog.common.checkpoints import Checkpoint
from fleetlog.common.errors import UsageError, VerificationError
from fleetlog.common.verify import MIN_STORED_LINK, ChainFailures, Report, verify_chain

DEFAULT_FILE = "events.db"
_ROWS = f"SELECT {', '.join(chain.CANONICAL_KEYS)}, hash FROM events ORDER BY seq"
_SEQ = chain.CANONICAL_KEYS.index("seq")


def resolve_db_path(path: str) -> str:
    """The main file: PATH itself, or the events.db (or the only .db) of a data_dir."""
    if os.path.isdir(path):
        candidate = os.path.join(path, DEFAULT_FILE)
        if os.path.exists(candidate):
            return candidate
        found = sorted(name for name in os.listdir(path) if name.endswith(".db"))
        if len(found) == 1:
            return os.path.join(path, found[0])
        raise UsageError(f"--db {path}: no {DEFAULT_FILE} in this directory")
    if not os.path.exists(path):
        raise UsageError(f"--db {path}: no such file or directory")
    return path


def _open_ro(path: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def verify_db(path: str, public_key: Ed25519PublicKey) -> Report:
    """The store's one chain; raises Tampered naming the first bad seq."""
    db_path = resolve_db_path(path)
    try:
        conn = _open_ro(db_path)
        conn.execute("PRAGMA query_only=1")
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise UsageError(f"--db {path}: cannot open as a fleetlog database: {exc}") from None
    if not {"meta", "chain_anchors"} <= tables or not ({"events", "partitions"} & tables):
        raise UsageError(f"--db {path}: not a fleetlog collector database")
    failures = ChainFailures()
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('last_seq', 'chain_head')"))
        anchors = {int(seq): bytes(link) for seq, link in conn.execute("SELECT seq, link FROM chain_anchors")}
    except sqlite3.Error as exc:
        conn.close()
        raise VerificationError(f"{db_path}: reading the database failed: {exc}") from None
    rows = _event_rows(conn, db_path, "partitions" in tables, anchors, failures)
    try:
        return verify_chain(rows, anchors, _checkpoints(conn), int(meta.get("last_seq") or 0),
                            meta.get("chain_head") or "", public_key, failures)
    except sqlite3.Error as exc:
        raise VerificationError(f"{db_path}: reading the database failed: {exc}") from None
    finally:
        rows.close()    # first: it closes the partition files it opened, then the main file
        conn.close()


def _checkpoints(conn: sqlite3.Connection) -> list[Checkpoint]:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'checkpoints'").fetchone():
        return []
    return [Checkpoint(*row) for row in conn.execute(
        "SELECT collector, seq, chain_hash, time, key_id, signature FROM checkpoints ORDER BY seq, key_id")]


def _event_rows(conn: sqlite3.Connection, db_path: str, partitioned: bool, anchors: dict[int, bytes],
                failures: ChainFailures) -> Generator[Row, None, None]:
    """Every stored event row in seq order: of the single file, or merged from the partition files
    the catalogue lists (docs/storage-model.md), blocks and rows alike. Every event of a partition
    is read, also one past the recorded head, so an appended event is caught, not ignored. An
    unreadable block goes to `failures` and ends the rows; so does a run's stored link_before that
    is not the chain's, but the rows go on (an altered anchor before it is named by the walk)."""
    if not partitioned:
        yield from conn.execute(_ROWS)
        return
    source_keys = {int(oid): (host, key) for oid, host, key in conn.execute("SELECT id, host, source_key FROM origins")}
    opened: list[sqlite3.Connection] = []
    try:
        streams: list[Iterable[Item]] = []
        for part in sorted(read_catalogue(conn), key=lambda part: part.id):
            path = partition_path(db_path, part.name)
            if not path.exists():
                continue    # its events are missing: the chain check names the first of them
            part_conn = _open_ro(str(path))
            opened.append(part_conn)
            tables = {name for (name,) in part_conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "blocks" in tables:
                streams.append(block_rows(part_conn, source_keys))
            if "events" in tables:      # the row model, not converted yet
                streams.append(part_conn.execute(_ROWS))
        previous: Row | None = None
        for item in heapq.merge(*streams, key=seq_of):
            if isinstance(item, Unreadable):
                failures.add(item.seq, item.reason)
                return
            if isinstance(item, RunStart):
                if not _link_before_holds(item, previous, anchors):
                    failures.add(item.seq, item.reason)    # the walk goes on: an earlier failure, named first
                continue
            previous = item
            yield item
    finally:
        for part_conn in opened:
            part_conn.close()


def _link_before_holds(start: RunStart, previous: Row | None, anchors: dict[int, bytes]) -> bool:
    """A run's stored link_before is the link of the event before it: of the chain's start, the
    stored link of that event (walked and found good just before: the end of its own run, so
    whole), or the anchor a purge of it kept. With none of those the event before is missing,
    which the chain check names."""
    if start.seq == 1:
        return start.link_before == chain.GENESIS
    if previous is not None and previous[_SEQ] == start.seq - 1:
        stored = bytes(previous[-1])
        return len(stored) >= MIN_STORED_LINK and start.link_before.startswith(stored) and len(start.link_before) == 32
    anchor = anchors.get(start.seq - 1)
    return anchor is None or start.link_before == anchor
