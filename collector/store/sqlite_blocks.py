"""Blocks in a partition file (docs/storage-model.md §6): the tables, and storing, reading and
removing blocks. The writer and the readers both use these; what a block holds is blocks.py's.

A partition file holds `blocks` (one row a block: the skip columns, the filter of message words,
then the compressed payload, last so that reading the skip columns never reads it),
`block_origins` (per block and origin, the positions it holds: the dedup spans, storage-model
§4) and `block_keys` (per block, the filters of its request ids and users: a lookup by either
reads these small rows alone, not the wide rows of `blocks`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from fleetlog.collector.store.blocks import (
    BlockError,
    DecodedBlock,
    EncodedBlock,
    decode_block,
    decode_column,
    key_blooms,
    open_payload,
)
from fleetlog.common.errors import StorageError

BLOCKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY, min_seq INTEGER NOT NULL, max_seq INTEGER NOT NULL,
    min_time INTEGER NOT NULL, max_time INTEGER NOT NULL, count INTEGER NOT NULL,
    min_level INTEGER NOT NULL, namespace TEXT NOT NULL, host TEXT NOT NULL,
    summary TEXT NOT NULL, bloom BLOB NOT NULL, data BLOB NOT NULL);
-- Follow and forwarders read by seq; searches walk time.
CREATE INDEX IF NOT EXISTS blocks_seq ON blocks(max_seq);
CREATE INDEX IF NOT EXISTS blocks_time ON blocks(max_time);
-- Compaction: the small blocks of a stream.
CREATE INDEX IF NOT EXISTS blocks_stream ON blocks(host, namespace, count);
-- Dedup: the blocks of an origin whose positions may overlap a batch's.
CREATE TABLE IF NOT EXISTS block_origins (origin INTEGER NOT NULL, max_pos INTEGER NOT NULL,
    min_pos INTEGER NOT NULL, block INTEGER NOT NULL, PRIMARY KEY (origin, max_pos, block)) WITHOUT ROWID;
"""
KEYS_SCHEMA = """CREATE TABLE block_keys (block INTEGER PRIMARY KEY, requests BLOB NOT NULL,
    users BLOB NOT NULL)"""
# What a block whose payload does not decode gets in block_keys: a filter that holds everything,
# so searches still open it and report it (`fleetlog verify` names its events).
_HOLDS_ALL = b"\xff" * 8

# The skip columns, in the order BlockHeader takes them.
HEADER_COLUMNS = ("id", "min_seq", "max_seq", "min_time", "max_time", "count", "min_level", "namespace",
                  "host", "summary")
SELECT_HEADERS = f"SELECT {', '.join(HEADER_COLUMNS)} FROM blocks"


@dataclass
class BlockHeader:
    """A block's row without its payload (and without its bloom, read when a filter needs it)."""

    id: int
    min_seq: int
    max_seq: int
    min_time: int
    max_time: int
    count: int
    min_level: int
    namespace: str
    host: str
    summary: str


@contextmanager
def file_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction of a partition file: committed when the block ends, rolled back
    when it raises (a failed rollback means none was open)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise


def create_blocks_schema(conn: sqlite3.Connection) -> None:
    """The partition tables. A file from before `block_keys` (its blocks' word filters held their
    request ids and users) gets the table and a row for every block, in one transaction, so a
    file has either no `block_keys` or one row there for each block."""
    conn.executescript(BLOCKS_SCHEMA)
    if has_block_keys(conn):
        return
    with file_transaction(conn):
        conn.execute(KEYS_SCHEMA)
        for (block_id,) in conn.execute("SELECT id FROM blocks").fetchall():
            data = payload(conn, block_id)
            try:
                # Two columns are all the filters are made of: the others stay compressed.
                opened = open_payload(data) if data is not None else None
                blooms = None if opened is None else key_blooms(decode_column(opened, "request_id"),
                                                                decode_column(opened, "user"))
            except BlockError:
                blooms = None
            conn.execute("INSERT INTO block_keys(block, requests, users) VALUES (?, ?, ?)",
                         (block_id, *(blooms or (_HOLDS_ALL, _HOLDS_ALL))))


def stored_filter(value: object) -> bytes | None:
    """A filter as stored; None when it is not a blob (an altered file: `fleetlog verify` names
    its block, and a search opens the block and matches it exactly)."""
    return bytes(value) if isinstance(value, (bytes, memoryview)) else None


def has_block_keys(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'block_keys'").fetchone() is not None


def insert_block(conn: sqlite3.Connection, block: EncodedBlock) -> int:
    """Store one block inside the caller's transaction; returns its id."""
    block_id = conn.execute(
        "INSERT INTO blocks(min_seq, max_seq, min_time, max_time, count, min_level, namespace, host, summary,"
        " bloom, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (block.min_seq, block.max_seq, block.min_time, block.max_time, block.count, block.min_level,
         block.namespace, block.host, block.summary, block.bloom, block.data)).fetchone()[0]
    # OR REPLACE: a block id is used again once its block is gone, and a row of block_keys left
    # by a block removed by hand (not through delete_blocks) must not stop the writer.
    conn.execute("INSERT OR REPLACE INTO block_keys(block, requests, users) VALUES (?, ?, ?)",
                 (block_id, block.request_bloom, block.user_bloom))
    conn.executemany("INSERT INTO block_origins(origin, max_pos, min_pos, block) VALUES (?, ?, ?, ?)",
                     ((origin, high, low, block_id) for origin, (low, high) in block.origins.items()))
    return int(block_id)


def delete_blocks(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    """Remove blocks (and their dedup spans) inside the caller's transaction."""
    for start in range(0, len(ids), 500):
        chunk = list(ids[start:start + 500])
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM block_origins WHERE block IN ({marks})", chunk)
        conn.execute(f"DELETE FROM block_keys WHERE block IN ({marks})", chunk)
        conn.execute(f"DELETE FROM blocks WHERE id IN ({marks})", chunk)


def headers(conn: sqlite3.Connection, where: str = "1", params: Iterable[object] = ()) -> list[BlockHeader]:
    return [BlockHeader(*row) for row in conn.execute(f"{SELECT_HEADERS} WHERE {where}", list(params))]


def payload(conn: sqlite3.Connection, block_id: int) -> bytes | None:
    """A block's compressed payload; None when it is gone (merged or purged since it was listed)."""
    row = conn.execute("SELECT data FROM blocks WHERE id = ?", (block_id,)).fetchone()
    return bytes(row[0]) if row else None


def decode_stored(conn: sqlite3.Connection, block_id: int) -> DecodedBlock | None:
    """A stored block's rows; None when it is gone (merged or purged since it was listed). A
    payload that does not decode (an altered file) is a StorageError naming the file's block, for
    the writer's dedup and purges to report as they report a failing disk, not a traceback."""
    data = payload(conn, block_id)
    if data is None:
        return None
    try:
        return decode_block(data)
    except BlockError as exc:
        raise StorageError(f"block {block_id} of a partition file is not readable ({exc}); "
                           f"`fleetlog verify` names the events it holds") from None


def bloom(conn: sqlite3.Connection, block_id: int) -> bytes | None:
    row = conn.execute("SELECT bloom FROM blocks WHERE id = ?", (block_id,)).fetchone()
    return bytes(row[0]) if row else None


def blocks_overlapping(conn: sqlite3.Connection, origin: int, low: int, high: int) -> list[int]:
    """Blocks holding positions of `origin` that may lie in [low, high] (dedup)."""
    return [block for (block,) in conn.execute(
        "SELECT block FROM block_origins WHERE origin = ? AND max_pos >= ? AND min_pos <= ?", (origin, low, high))]
