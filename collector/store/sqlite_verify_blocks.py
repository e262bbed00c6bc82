"""What `fleetlog verify --db` reads of a partition file of blocks (blocks.py), in seq order.

Blocks of different streams interleave in seq (a merged block holds runs of seqs between which
other streams' events lie), so a file's blocks are merged by seq, and a block is decoded only when
the merge reaches its first seq: memory holds the blocks open at one seq, not the file, and no
more than MAX_HELD_ROWS of their rows (past it, a block is read a chunk at a time).

Per event the chain check gets CANONICAL_KEYS values and the stored link (four bytes, or the whole
link at a run's end). Two more items go in the same seq order: `Unreadable`, a block whose payload
does not decode, or whose skip columns or filters (summary, word filter, request-id and user
filters: what a search trusts to pass a block by) disagree with its events; and `RunStart`, the
link a block stored as the one before a run (what a purge inside the block would make an anchor
of), which sqlite_verify holds to the chain.
"""

from __future__ import annotations

import heapq
import itertools
import json
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.blocks import (
    HOST,
    LEVEL,
    NAMESPACE,
    REQUEST_ID,
    SEQ,
    SUMMARY_COLUMNS,
    TIME,
    USER,
    BlockError,
    decode_block,
    fill_ids,
    key_blooms,
    word_and_key_bloom,
    word_bloom,
)
from fleetlog.collector.store.sqlite_blocks import has_block_keys, stored_filter
from fleetlog.common import chain

Row = tuple[Any, ...]
CHECKED_SEQ = chain.CANONICAL_KEYS.index("seq")
# A decoded row (ROW_COLUMNS) as the chain check takes it: CANONICAL_KEYS values, then the link.
_AS_CHECKED: Callable[[Sequence[Any]], Row] = operator.itemgetter(
    *(ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS), ROW_COLUMNS.index("hash"))
_HEADERS = ("SELECT id, min_seq, max_seq, count, min_time, max_time, min_level, namespace, host, summary, bloom,"
            " {keys} FROM blocks{join} ORDER BY min_seq, id")
_KEYED = {"keys": "block_keys.block, requests, users", "join": " LEFT JOIN block_keys ON block_keys.block = blocks.id"}
_UNKEYED = {"keys": "NULL, NULL, NULL", "join": ""}


NOT_READABLE = "is not readable (altered)"
FILTERS_LIE = "has search filters that do not hold its events (altered: searches would pass them by)"


@dataclass(frozen=True)
class Unreadable:
    """A block that could not be read as events, or that searches cannot be trusted to find: the
    rows end at its first seq."""

    first: int
    last: int
    why: str = NOT_READABLE

    @property
    def seq(self) -> int:
        return self.first

    @property
    def reason(self) -> str:
        return f"the block holding seqs {self.first}-{self.last} {self.why}"


@dataclass(frozen=True)
class RunStart:
    """The link the block holding seqs first-last stored as the one before its run at `seq`."""

    seq: int
    link_before: bytes
    first: int
    last: int

    @property
    def reason(self) -> str:
        return (f"the block holding seqs {self.first}-{self.last} records a chain link before seq {self.seq} "
                "that is not the chain's (altered)")


Item = Row | Unreadable | RunStart


def seq_of(item: Item) -> int:
    return int(item[CHECKED_SEQ]) if isinstance(item, tuple) else item.seq


# Rows decoded and not yet handed on, over a file's open blocks; past it, a block newly decoded
# keeps a chunk of its rows and is decoded again for the next (many streams' merged blocks all
# overlap in seq: 200 hosts' blocks of 8,192 events would otherwise be held whole at once).
MAX_HELD_ROWS = 50_000
MIN_CHUNK = 256


@dataclass
class _OpenBlock:
    header: Row
    items: Iterator[Item]       # of the chunk decoded last
    taken: int = 0              # rows of the block decoded into a chunk so far
    done: bool = False          # every row taken (or the block is Unreadable)


def block_rows(conn: sqlite3.Connection, source_keys: dict[int, tuple[str, str]]) -> Iterator[Item]:
    """A partition file's block events (and RunStart, Unreadable) in seq order."""
    max_held = MAX_HELD_ROWS
    keyed = has_block_keys(conn)
    # Open to the end: every read below sees the same snapshot.
    headers = conn.execute(_HEADERS.format(**(_KEYED if keyed else _UNKEYED)))
    order = itertools.count()           # ties never compare the items
    heap: list[tuple[int, int, Item, _OpenBlock]] = []
    held = 0

    def next_of(block: _OpenBlock) -> Item | None:
        nonlocal held
        item = next(block.items, None)
        if item is None and not block.done:
            held += _chunk(conn, block, source_keys, max(MIN_CHUNK, max_held - held), keyed)
            item = next(block.items, None)
        return item

    header = headers.fetchone()
    while heap or header is not None:
        if header is not None and (not heap or header[1] <= heap[0][0]):
            block = _OpenBlock(header, iter(()))
            first = next_of(block)
            if first is not None:
                heapq.heappush(heap, (seq_of(first), next(order), first, block))
            header = headers.fetchone()
            continue
        _, _, item, block = heapq.heappop(heap)
        if isinstance(item, tuple):
            held -= 1
        yield item
        following = next_of(block)
        if following is not None:
            heapq.heappush(heap, (seq_of(following), next(order), following, block))


def _chunk(conn: sqlite3.Connection, block: _OpenBlock, source_keys: dict[int, tuple[str, str]], room: int,
           keyed: bool) -> int:
    """The block's next rows, at most `room` of them, as its items: checked rows, each run's first
    preceded by its RunStart; or the block as Unreadable. Returns how many rows it holds."""
    header = block.header
    block_id, first, last = header[0], int(header[1]), int(header[2])
    stored = conn.execute("SELECT data FROM blocks WHERE id = ?", (block_id,)).fetchone()
    block.done = True
    try:
        decoded = decode_block(bytes(stored[0]))
        if block.taken == 0 and not _header_holds(header, decoded.rows):
            block.items = iter([Unreadable(first, last)])
            return 0
        if block.taken == 0 and not _filters_hold(header, decoded.rows, keyed):
            block.items = iter([Unreadable(first, last, FILTERS_LIE)])
            return 0
        rows = decoded.rows[block.taken:block.taken + room]
        fill_ids(rows, source_keys)     # an origin the store does not list is an altered payload too
    except (BlockError, KeyError, TypeError, ValueError):
        block.items = iter([Unreadable(first, last)])
        return 0
    low, high = rows[0][SEQ], rows[-1][SEQ]
    starts = {run.start: RunStart(run.start, run.link_before, first, last)
              for run in decoded.runs if low <= run.start <= high}
    block.items = _with_run_starts(rows, starts)
    block.taken += len(rows)
    block.done = block.taken >= len(decoded.rows)
    return len(rows)


def _with_run_starts(rows: list[list[Any]], starts: dict[int, RunStart]) -> Iterator[Item]:
    for row in rows:
        start = starts.get(row[SEQ])
        if start is not None:
            yield start
        yield _AS_CHECKED(row)


def _header_holds(header: Row, rows: list[list[Any]]) -> bool:
    """The skip columns say what the events are: their seqs (strictly rising), count, time and
    level bounds and stream. A search passes a block by them, so a lie there hides events."""
    _, first, last, count, min_time, max_time, min_level, namespace, host = header[:9]
    seqs = [row[SEQ] for row in rows]
    times = [row[TIME] for row in rows]
    return (bool(rows) and len(rows) == count and seqs[0] == first and seqs[-1] == last
            and all(a < b for a, b in itertools.pairwise(seqs))
            and min(times) == min_time and max(times) == max_time and min(row[LEVEL] for row in rows) == min_level
            and all((row[NAMESPACE] or "") == (namespace or "") and (row[HOST] or "") == (host or "") for row in rows))


def _filters_hold(header: Row, rows: list[list[Any]], keyed: bool) -> bool:
    """The summary lists every value its columns hold, and the filters are the ones the events
    make (the word filter as written before block_keys, too): a search passes a block by them, so
    a value left out of them hides its events from a search as a lie in the skip columns does."""
    summary, bloom, keys_row, requests, users = header[9:14]
    columns = list(zip(*rows))
    try:
        listed = json.loads(summary)
        if not isinstance(listed, dict):
            return False
        for name in SUMMARY_COLUMNS:
            values = listed.get(name)
            if values is not None and not set(columns[ROW_COLUMNS.index(name)]) <= set(map(_hashable, values)):
                return False
    except (ValueError, TypeError):
        return False
    stored = stored_filter(bloom)
    if stored != word_bloom(columns) and stored != word_and_key_bloom(columns):
        return False
    if not keyed:
        return True
    return (keys_row is not None
            and (stored_filter(requests), stored_filter(users)) == key_blooms(columns[REQUEST_ID], columns[USER]))


def _hashable(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value
