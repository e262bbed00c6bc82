"""`fleetlog verify --db PATH`: the tamper evidence of a SQLite store, read-only, without a collector.

This module reads what the store holds — the main file's meta, anchors and checkpoints, and the
events of every partition file the catalogue lists (partitions.py: their names and paths) — and
common/verify.py judges the chain. A partition file the catalogue lists but that is missing is
skipped: its events are missing, and the chain check names the first of them.

A partition file holds blocks (blocks.py), or rows of the row model when it is not converted yet
(`events`); both are read, merged by seq. Blocks are decoded one at a time as the merge reaches
them, so memory holds the blocks whose seqs overlap, not a partition. A block whose payload does
not decode, or whose skip columns (what a search trusts to pass it by) disagree with its events,
ends the rows there and is named by its first seq.
"""

from __future__ import annotations

import heapq
import itertools
import operator
import os
import sqlite3
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.blocks import (
    HOST,
    LEVEL,
    NAMESPACE,
    SEQ,
    TIME,
    BlockError,
    decode_block,
    fill_ids,
)
from fleetlog.collector.store.partitions import partition_path, read_catalogue
from fleetlog.common import chain
from fleetlog.common.checkpoints import Checkpoint
from fleetlog.common.errors import UsageError, VerificationError
from fleetlog.common.verify import ChainFailures, Report, verify_chain

DEFAULT_FILE = "events.db"
_ROWS = f"SELECT {', '.join(chain.CANONICAL_KEYS)}, hash FROM events ORDER BY seq"
_SEQ = chain.CANONICAL_KEYS.index("seq")
# A decoded block row (ROW_COLUMNS) as the chain check takes it: CANONICAL_KEYS values, the link.
_AS_CHECKED: Callable[[Sequence[Any]], tuple[Any, ...]] = operator.itemgetter(
    *(ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS), ROW_COLUMNS.index("hash"))
_HEADERS = ("SELECT id, min_seq, max_seq, count, min_time, max_time, min_level, namespace, host"
            " FROM blocks ORDER BY min_seq, id")

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Unreadable:
    """A block that could not be read as events: the rows end at its first seq."""

    first: int
    last: int

    @property
    def reason(self) -> str:
        return f"the block holding seqs {self.first}-{self.last} is not readable (altered)"


Item = Row | Unreadable


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
    rows = _event_rows(conn, db_path, "partitions" in tables, failures)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('last_seq', 'chain_head')"))
        anchors = {int(seq): bytes(link) for seq, link in conn.execute("SELECT seq, link FROM chain_anchors")}
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


def _event_rows(conn: sqlite3.Connection, db_path: str, partitioned: bool,
                failures: ChainFailures) -> Generator[Row, None, None]:
    """Every stored event row in seq order: of the single file, or merged from the partition files
    the catalogue lists (docs/storage-model.md), blocks and rows alike. Every event of a partition
    is read, also one past the recorded head, so an appended event is caught, not ignored. An
    unreadable block goes to `failures` and ends the rows."""
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
                streams.append(_block_rows(part_conn, source_keys))
            if "events" in tables:      # the row model, not converted yet
                streams.append(part_conn.execute(_ROWS))
        for item in heapq.merge(*streams, key=_seq_of):
            if isinstance(item, Unreadable):
                failures.add(item.first, item.reason)
                return
            yield item
    finally:
        for part_conn in opened:
            part_conn.close()


def _seq_of(item: Item) -> int:
    return item.first if isinstance(item, Unreadable) else int(item[_SEQ])


def _block_rows(conn: sqlite3.Connection, source_keys: dict[int, tuple[str, str]]) -> Iterator[Item]:
    """A partition file's block events in seq order. Blocks of different streams interleave in
    seq, so this is a merge too, but one that decodes a block only when the merge reaches its
    first seq: memory holds the blocks open at one seq, not the file."""
    headers = conn.execute(_HEADERS)
    order = itertools.count()       # ties never compare the rows
    heap: list[tuple[int, int, Item, Iterator[Item]]] = []
    header = headers.fetchone()
    while heap or header is not None:
        if header is not None and (not heap or header[1] <= heap[0][0]):
            items = iter(_block_items(conn, header, source_keys))
            first = next(items, None)
            if first is not None:
                heapq.heappush(heap, (_seq_of(first), next(order), first, items))
            header = headers.fetchone()
            continue
        _, _, item, items = heapq.heappop(heap)
        yield item
        following = next(items, None)
        if following is not None:
            heapq.heappush(heap, (_seq_of(following), next(order), following, items))


def _block_items(conn: sqlite3.Connection, header: Row, source_keys: dict[int, tuple[str, str]]) -> Iterable[Item]:
    """One block's events as checked rows, or the block as Unreadable."""
    block_id, first, last = header[0], int(header[1]), int(header[2])
    stored = conn.execute("SELECT data FROM blocks WHERE id = ?", (block_id,)).fetchone()
    try:
        rows = decode_block(bytes(stored[0])).rows
        fill_ids(rows, source_keys)     # an origin the store does not list is an altered payload too
        if not _header_holds(header, rows):
            return [Unreadable(first, last)]
    except (BlockError, KeyError, TypeError, ValueError):
        return [Unreadable(first, last)]
    return map(_AS_CHECKED, rows)


def _header_holds(header: Row, rows: list[list[Any]]) -> bool:
    """The skip columns say what the events are: their seqs (strictly rising), count, time and
    level bounds and stream. A search passes a block by them, so a lie there hides events."""
    _, first, last, count, min_time, max_time, min_level, namespace, host = header
    seqs = [row[SEQ] for row in rows]
    times = [row[TIME] for row in rows]
    return (bool(rows) and len(rows) == count and seqs[0] == first and seqs[-1] == last
            and all(a < b for a, b in itertools.pairwise(seqs))
            and min(times) == min_time and max(times) == max_time and min(row[LEVEL] for row in rows) == min_level
            and all((row[NAMESPACE] or "") == (namespace or "") and (row[HOST] or "") == (host or "") for row in rows))
