"""Converting partition files of the row model (one row per event, schema 2, and the legacy
partition of a migrated single-file store) to blocks, when the writer opens the store
(docs/storage-model.md §6).

Each file is converted in one transaction: its committed rows, read in seq order, become blocks
of one stream each (at most MAX_BLOCK_EVENTS), then `events` and `events_fts` are dropped; after
the commit a VACUUM gives the space back. A stop between two files leaves some files converted
and the others as they were: both are readable (verify reads both layouts), and the next start
converts the rest. Rows past the committed head do not exist (crash rule) and are not converted.

A block keeps the whole link before each run of consecutive seqs: the link of seq - 1, which is
a row of the file being converted (still in `events` until the commit), of another file (a row
not yet converted, or the end of a run of a converted block), a chain anchor (a purged event),
or the chain's start.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.blocks import ID, ORIGIN, POS, decode_block
from fleetlog.collector.store.partitions import ConnectionPool, Partition
from fleetlog.collector.store.sqlite_blocks import file_transaction, headers, insert_block, payload
from fleetlog.collector.store.sqlite_bulk import MAX_BLOCK_EVENTS, stream_blocks
from fleetlog.common import chain
from fleetlog.common.errors import StorageError
from fleetlog.common.ids import event_ids_of

log = logging.getLogger("fleetlog.collector.store")

# Rows of a file held before their blocks are written (8 blocks' worth): a file of many streams
# gets smaller blocks rather than the whole file in memory.
MAX_BUFFERED_ROWS = 8 * MAX_BLOCK_EVENTS


def tables_of(conn: sqlite3.Connection | None) -> set[str]:
    """The tables of a partition file; none when it is gone."""
    if conn is None:
        return set()
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class _Links:
    """The whole link of any committed seq before the ones being converted, wherever it is."""

    def __init__(self, parts: list[Partition], open_part: Callable[[str], sqlite3.Connection | None],
                 main: sqlite3.Connection):
        self.parts, self.open_part, self.main = parts, open_part, main
        self.run_ends: dict[tuple[str, int], dict[int, bytes]] = {}    # (file, block) -> {run end: link}

    def of(self, seq: int, current: sqlite3.Connection) -> bytes:
        if seq == 0:
            return chain.GENESIS
        row = current.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
        if row is not None:
            return bytes(row[0])
        for part in self.parts:
            if part.min_seq <= seq <= part.max_seq:
                found = self._in_file(part.name, seq)
                if found is not None:
                    return found
        row = self.main.execute("SELECT link FROM chain_anchors WHERE seq = ?", (seq,)).fetchone()
        if row is not None:
            return bytes(row[0])
        raise StorageError(f"converting to blocks: the chain link of seq {seq} is nowhere (no event, no anchor)")

    def _in_file(self, name: str, seq: int) -> bytes | None:
        conn = self.open_part(name)
        if conn is None:
            return None
        if "events" in tables_of(conn):
            row = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
            if row is not None:
                return bytes(row[0])
        for header in headers(conn, "min_seq <= ? AND max_seq >= ?", (seq, seq)):
            ends = self.run_ends.get((name, header.id))
            if ends is None:
                data = payload(conn, header.id)
                ends = {} if data is None else {run.end: run.link_end for run in decode_block(data).runs}
                self.run_ends[(name, header.id)] = ends
            if seq in ends:
                return ends[seq]
        return None


def convert_row_partitions(main_path: str, parts: list[Partition], pool: ConnectionPool, main: sqlite3.Connection,
                           last_seq: int, source_keys: dict[int, tuple[str, str]]) -> int:
    """Convert every listed partition file that still has `events` (oldest first); returns the
    events converted. Each file's tables are looked at, once a start (no mark in the main file
    could vouch for files copied in from a backup)."""

    def open_part(name: str) -> sqlite3.Connection | None:
        conn = pool.get(name)
        pool.trim()         # a file at a time: a store of many partitions never holds them all open
        return conn

    ordered = sorted(parts, key=lambda p: (p.min_seq, p.id))
    todo = [p for p in ordered if "events" in tables_of(open_part(p.name))]
    links = _Links(ordered, open_part, main)
    total = 0
    for part in todo:
        pool.hold([part.name], +1)      # open while other files are asked for links
        try:
            conn = open_part(part.name)
            assert conn is not None     # listed in todo: its file exists
            total += _convert_file(conn, links, last_seq, source_keys)
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StorageError(f"{main_path}: converting partition {part.name} to blocks failed: {exc}") from exc
        finally:
            pool.hold([part.name], -1)
    if todo:
        log.warning("%s: converted %d events of %d partition files to compressed blocks: %s", main_path, total,
                    len(todo), ", ".join(p.name for p in todo))
    return total


def _convert_file(conn: sqlite3.Connection, links: _Links, last_seq: int,
                  source_keys: dict[int, tuple[str, str]]) -> int:
    """One file in one transaction; returns its events."""
    makers: dict[int, Callable[[int], str] | None] = {}

    def derived(row: list[Any]) -> str | None:
        maker = makers.get(row[ORIGIN], ...)
        if maker is ...:
            key = source_keys.get(row[ORIGIN])
            maker = makers[row[ORIGIN]] = None if key is None else event_ids_of(*key)
        return None if maker is None else maker(row[POS])

    def link_before(seq: int) -> bytes:
        return links.of(seq - 1, conn)

    count = 0
    buffered: list[list[Any]] = []
    with file_transaction(conn):
        reading = conn.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM events WHERE seq <= ? ORDER BY seq",
                               (last_seq,))
        while True:
            batch = reading.fetchmany(4_096)
            for values in batch:
                row = list(values)
                if row[ID] == derived(row):
                    row[ID] = None          # derived again on read
                buffered.append(row)
            if len(buffered) >= MAX_BUFFERED_ROWS or (not batch and buffered):
                for block in stream_blocks(buffered, link_before, keep_ids=True):
                    insert_block(conn, block)
                count += len(buffered)
                buffered = []
            if not batch:
                break
        conn.execute("DROP TABLE IF EXISTS events_fts")
        conn.execute("DROP TABLE events")
    return count
