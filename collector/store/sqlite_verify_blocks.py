"""What `fleetlog verify --db` reads of a partition file of blocks (blocks.py), in seq order.

Blocks of different streams interleave in seq (a merged block holds runs of seqs between which
other streams' events lie), so a file's blocks are merged by seq, and a block is decoded only when
the merge reaches its first seq: memory holds the blocks open at one seq, not the file.

Per event the chain check gets CANONICAL_KEYS values and the stored link (four bytes, or the whole
link at a run's end). Two more items go in the same seq order: `Unreadable`, a block whose payload
does not decode or whose skip columns (what a search trusts to pass a block by) disagree with its
events; and `RunStart`, the link a block stored as the one before a run (what a purge inside the
block would make an anchor of), which sqlite_verify holds to the chain.
"""

from __future__ import annotations

import heapq
import itertools
import operator
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

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
from fleetlog.common import chain

Row = tuple[Any, ...]
CHECKED_SEQ = chain.CANONICAL_KEYS.index("seq")
# A decoded row (ROW_COLUMNS) as the chain check takes it: CANONICAL_KEYS values, then the link.
_AS_CHECKED: Callable[[Sequence[Any]], Row] = operator.itemgetter(
    *(ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS), ROW_COLUMNS.index("hash"))
_HEADERS = ("SELECT id, min_seq, max_seq, count, min_time, max_time, min_level, namespace, host"
            " FROM blocks ORDER BY min_seq, id")


@dataclass(frozen=True)
class Unreadable:
    """A block that could not be read as events: the rows end at its first seq."""

    first: int
    last: int

    @property
    def seq(self) -> int:
        return self.first

    @property
    def reason(self) -> str:
        return f"the block holding seqs {self.first}-{self.last} is not readable (altered)"


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


def block_rows(conn: sqlite3.Connection, source_keys: dict[int, tuple[str, str]]) -> Iterator[Item]:
    """A partition file's block events (and RunStart, Unreadable) in seq order."""
    headers = conn.execute(_HEADERS)
    order = itertools.count()       # ties never compare the items
    heap: list[tuple[int, int, Item, Iterator[Item]]] = []
    header = headers.fetchone()
    while heap or header is not None:
        if header is not None and (not heap or header[1] <= heap[0][0]):
            items = iter(_block_items(conn, header, source_keys))
            first = next(items, None)
            if first is not None:
                heapq.heappush(heap, (seq_of(first), next(order), first, items))
            header = headers.fetchone()
            continue
        _, _, item, items = heapq.heappop(heap)
        yield item
        following = next(items, None)
        if following is not None:
            heapq.heappush(heap, (seq_of(following), next(order), following, items))


def _block_items(conn: sqlite3.Connection, header: Row, source_keys: dict[int, tuple[str, str]]) -> Iterable[Item]:
    """One block's events as checked rows, each run's first preceded by its RunStart; or the
    block as Unreadable."""
    block_id, first, last = header[0], int(header[1]), int(header[2])
    stored = conn.execute("SELECT data FROM blocks WHERE id = ?", (block_id,)).fetchone()
    try:
        block = decode_block(bytes(stored[0]))
        fill_ids(block.rows, source_keys)     # an origin the store does not list is an altered payload too
        if not _header_holds(header, block.rows):
            return [Unreadable(first, last)]
    except (BlockError, KeyError, TypeError, ValueError):
        return [Unreadable(first, last)]
    starts = {run.start: RunStart(run.start, run.link_before, first, last) for run in block.runs}
    return _with_run_starts(block.rows, starts)


def _with_run_starts(rows: list[list[Any]], starts: dict[int, RunStart]) -> Iterator[Item]:
    for row in rows:
        start = starts.get(row[SEQ])
        if start is not None:
            yield start
        yield _AS_CHECKED(row)


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
