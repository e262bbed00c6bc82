"""Writing one transaction's events into its partition files as blocks (docs/storage-model.md §6).

The writer hands each partition file of a transaction its rows (already chained: `hash` is the
whole link); here they are cut into blocks — one stream (namespace, host) a block, seq order, at
most MAX_BLOCK_EVENTS — encoded and inserted inside the file's open transaction. The files of a
transaction are filled by a thread each: zstd and SQLite let the GIL go while they compress and
write, so the files' blocks are stored side by side with the writer's own work on the main file.

`PartitionConnection` is the writer's connection to a partition file (a `sqlite3.Connection`
with the few steps of a storing transaction named, so a test can fail any of them).
"""

from __future__ import annotations

import concurrent.futures
import sqlite3
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.blocks import EncodedBlock, encode_block, encode_columns
from fleetlog.collector.store.sqlite_blocks import insert_block

MAX_BLOCK_EVENTS = 8_192
_NAMESPACE = ROW_COLUMNS.index("namespace")
_HOST = ROW_COLUMNS.index("host")


def stream_blocks(rows: Sequence[list[Any]], link_before: Callable[[int], bytes],
                  keep_ids: bool = False) -> list[EncodedBlock]:
    """`rows` (ROW_COLUMNS, seq order, `hash` the whole link) as blocks: grouped by stream, each
    group cut every MAX_BLOCK_EVENTS. The ids are left out (every one is the derived one, taken
    again on read) unless `keep_ids`, where the caller put None for each derived one."""
    streams = _one_stream(rows) or _by_stream(rows)
    return [encode_block(group[start:start + MAX_BLOCK_EVENTS], link_before, derived_ids=not keep_ids)
            for group in streams for start in range(0, len(group), MAX_BLOCK_EVENTS)]


def stream_column_blocks(table: list[list[Any]], link_before: Callable[[int], bytes],
                         pool: concurrent.futures.Executor | None = None,
                         links: Callable[[], Sequence[bytes]] | None = None) -> list[EncodedBlock]:
    """stream_blocks of a partition's events kept by column (one list per ROW_COLUMNS name, seq
    order; the writer's new events, every id the derived one). A table of one stream, the usual
    one, is cut into blocks by slicing its columns, without a list an event; one of several
    streams is made into rows and goes the rows' way. With a `pool`, the blocks are encoded in
    it side by side (a block's word filter and zstd let the GIL go). `links`: returns
    table[HASH] once the links are made, which is not read before (the writer makes them
    meanwhile); link_before is asked only after."""
    if len(set(table[_NAMESPACE])) != 1 or len(set(table[_HOST])) != 1:
        if links is not None:
            links()
        return stream_blocks([list(row) for row in zip(*table)], link_before)
    count = len(table[0])
    whole = count <= MAX_BLOCK_EVENTS

    def encode(start: int) -> EncodedBlock:
        block = table if whole else [column[start:start + MAX_BLOCK_EVENTS] for column in table]
        if links is None:
            return encode_columns(block, link_before, derived_ids=True)
        return encode_columns(block, link_before, derived_ids=True,
                              links=lambda: links()[start:start + MAX_BLOCK_EVENTS])

    starts = range(0, count, MAX_BLOCK_EVENTS)
    if pool is None:
        return [encode(start) for start in starts]
    encoding = [pool.submit(encode, start) for start in starts]
    wait_all(encoding)
    return [future.result() for future in encoding]


def _one_stream(rows: Sequence[list[Any]]) -> list[Sequence[list[Any]]] | None:
    """[rows] when they are all of one stream (one agent's transaction usually is: checked with C
    loops over two columns), else None."""
    if len(set(map(itemgetter(_NAMESPACE), rows))) == 1 and len(set(map(itemgetter(_HOST), rows))) == 1:
        return [rows]
    return None


def _by_stream(rows: Sequence[list[Any]]) -> list[Sequence[list[Any]]]:
    """The rows of each stream, streams in order of first appearance."""
    streams: dict[tuple[Any, Any], list[list[Any]]] = {}
    for row in rows:
        key = (row[_NAMESPACE], row[_HOST])
        group = streams.get(key)
        if group is None:
            group = streams[key] = []
        group.append(row)
    return list(streams.values())


class PartitionConnection(sqlite3.Connection):
    """A writer's connection to one partition file, with the steps of a storing transaction."""

    def begin_batch(self) -> None:
        self.execute("BEGIN IMMEDIATE")

    def insert_blocks(self, blocks: Sequence[EncodedBlock]) -> None:
        """The blocks, inside the open batch."""
        for block in blocks:
            insert_block(self, block)

    def commit_batch(self) -> None:
        self.execute("COMMIT")

    def rollback_batch(self) -> None:
        """Best effort: a failed rollback means no transaction was open."""
        try:
            self.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def wait_all(futures: Sequence[concurrent.futures.Future[Any]]) -> None:
    """Wait for every step, then raise the first failure (none is left running)."""
    concurrent.futures.wait(futures)
    for future in futures:
        exc = future.exception()
        if exc is not None:
            raise exc
