"""Rows of many blocks in one order — (time, seq) for searches, seq for follow — opening as few
blocks as that order allows (docs/storage-model.md §6).

Partitions and blocks wait in one heap under a bound: a key no row inside them can beat (a
partition's or block's oldest time for an ascending search, its newest for a descending one, its
first seq for follow). A partition is opened, and a block decoded, only when its bound comes up,
that is when no row already decoded comes before everything it may hold; so a search for the
newest 100 rows decodes the newest blocks and stops. Memory is bounded: a block keeps no more of
its matching rows than the limit still needs, and when many blocks overlap (an export of a day
of many hosts) each keeps a chunk of them and is decoded again for the next.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from fleetlog.collector.store.sqlite_blocks import BlockHeader

Key = tuple[int, ...]
Row = list[Any]

# Rows decoded and not yet returned, over all blocks, before blocks are cut into chunks.
MAX_HELD_ROWS = 50_000
MIN_CHUNK = 256
# Sorts before every row key that shares its first element (rows have seq >= 1).
BEFORE = -(1 << 63)


class OpenedPartition(Protocol):
    """A partition being read (inside one read transaction): its candidate blocks, and the
    matching rows of one of them (ROW_COLUMNS order)."""

    blocks: list[BlockHeader]

    def matching(self, header: BlockHeader, after: Key | None, keep: int) -> tuple[list[Row], bool]:
        """The block's first `keep` matching rows in the merge's order after key `after`, and
        whether more follow them."""

    def close(self) -> None: ...


@dataclass
class Source:
    """A partition not opened yet, under its bound."""

    bound: Key
    open: Callable[[], OpenedPartition | None]


class _Part:
    def __init__(self, opened: OpenedPartition):
        self.opened = opened
        self.pending = len(opened.blocks)

    def done_with_block(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.opened.close()


class _Block:
    def __init__(self, part: _Part, header: BlockHeader):
        self.part = part
        self.header = header
        self.after: Key | None = None    # rows up to this key were taken already
        self.rows: list[Row] | None = None
        self.pos = 0
        self.complete = True             # rows hold every match still needed


def merged(sources: Iterable[Source], *, row_key: Callable[[Row], Key], block_bound: Callable[[BlockHeader], Key],
           limit: int = 0, check: Callable[[], None] = lambda: None,
           finish: Callable[[list[Row]], None] = lambda rows: None,
           max_held: int | None = None) -> Generator[Row, None, None]:
    """Matching rows of the sources' blocks in `row_key` order, at most `limit` (0 = all).
    `check()` runs before each partition or block is opened (the query deadline); `finish(rows)`
    completes rows about to be returned (their event ids). Partitions are closed once read, and
    all of them when the iteration stops early."""
    max_held = MAX_HELD_ROWS if max_held is None else max_held
    heap: list[tuple[Key, int, Any]] = []
    counter = itertools.count()
    for source in sources:
        heap.append((source.bound, next(counter), source))
    heapq.heapify(heap)
    opened: list[_Part] = []
    emitted = 0
    held = 0
    try:
        while heap:
            _, _, item = heapq.heappop(heap)
            if isinstance(item, Source):
                check()
                part_opened = item.open()
                if part_opened is None:
                    continue
                part = _Part(part_opened)
                if not part.pending:
                    part_opened.close()
                    continue
                opened.append(part)
                for header in part_opened.blocks:
                    heapq.heappush(heap, (block_bound(header), next(counter), _Block(part, header)))
                continue
            block: _Block = item
            if block.rows is None:
                check()
                keep = max(MIN_CHUNK, max_held - held)
                if limit:
                    keep = min(keep, limit - emitted)
                rows, more = block.part.opened.matching(block.header, block.after, keep)
                block.complete = not more
                if not rows:
                    block.part.done_with_block()
                    continue
                finish(rows)
                block.rows, block.pos = rows, 0
                held += len(rows)
                heapq.heappush(heap, (row_key(rows[0]), next(counter), block))
                continue
            rows = block.rows
            while True:
                row = rows[block.pos]
                block.pos += 1
                held -= 1
                yield row
                emitted += 1
                if limit and emitted >= limit:
                    return
                if block.pos == len(rows):
                    break
                following = row_key(rows[block.pos])
                if heap and following > heap[0][0]:
                    heapq.heappush(heap, (following, next(counter), block))
                    break
            if block.pos < len(rows):
                continue
            if block.complete:
                block.part.done_with_block()
            else:   # the next chunk: decoded again when its turn comes
                block.after = row_key(rows[-1])
                block.rows = None
                heapq.heappush(heap, (block.after, next(counter), block))
    finally:
        for part in opened:
            if part.pending > 0:
                part.opened.close()
