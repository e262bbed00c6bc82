"""Removing events from the blocks of a partition file (a row purge: retention of a kept
partition, of the legacy partition, or an event deleted on request; docs/storage-model.md §6).

A block that holds a removed seq is rewritten without it (or deleted when nothing stays), in one
transaction of its partition file. The removed events' whole links, which the purge record keeps
as anchors, are recomputed from the runs that held them: a block keeps only four bytes of each
link, and the whole link before and at the end of each run, which is where the recomputation
starts and what it must meet.
"""

from __future__ import annotations

import bisect
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.blocks import (
    HASH,
    ID,
    NAMESPACE,
    SEQ,
    TIME,
    EncodedBlock,
    encode_block,
    fill_ids,
    links_of_run,
)
from fleetlog.collector.store.sqlite_blocks import (
    decode_stored,
    delete_blocks,
    file_transaction,
    headers,
    insert_block,
)
from fleetlog.common import chain

log = logging.getLogger("fleetlog.collector.store")

# Where each of the chain's canonical keys is in a row (ROW_COLUMNS).
CHAIN_COLUMNS = tuple(ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS)


def link_step(link: bytes, row: Sequence[Any]) -> bytes:
    """The chain's link of `row` (ROW_COLUMNS, with its id) after `link`."""
    return chain.extend(link, chain.canonical_values([row[c] for c in CHAIN_COLUMNS]))


@dataclass
class Removal:
    """What removing seqs means for one partition file, found before anything is written."""

    rewrites: list[tuple[int, EncodedBlock | None]] = field(default_factory=list)  # block -> its rewrite, None: goes
    removed: list[tuple[int, int, str, bytes]] = field(default_factory=list)      # (seq, time, namespace, link)


class _Ranges:
    """Inclusive seq ranges, sorted and disjoint, for membership tests."""

    def __init__(self, ranges: Sequence[tuple[int, int]]):
        self.ranges = sorted(ranges)
        self.starts = [low for low, _ in self.ranges]

    def __contains__(self, seq: int) -> bool:
        i = bisect.bisect_right(self.starts, seq) - 1
        return i >= 0 and self.ranges[i][1] >= seq


def plan_removal(conn: sqlite3.Connection, ranges: Sequence[tuple[int, int]], last_seq: int,
                 source_keys: dict[int, tuple[str, str]]) -> Removal:
    """The blocks of this file holding committed seqs in `ranges`, each with its rewrite, and the
    events removed (seq order)."""
    wanted = _Ranges(ranges)
    block_ids: set[int] = set()
    for low, high in wanted.ranges:
        block_ids.update(h.id for h in headers(conn, "max_seq >= ? AND min_seq <= ? AND min_seq <= ?",
                                                (low, high, last_seq)))
    removal = Removal()
    for block_id in sorted(block_ids):
        decoded = decode_stored(conn, block_id)
        if decoded is None:
            continue
        rows = decoded.rows
        gone = {row[SEQ] for row in rows if row[SEQ] in wanted}
        if not gone:
            continue
        derived = [row[ID] is None for row in rows]
        fill_ids(rows, source_keys)
        links: dict[int, bytes] = {}
        starts: dict[int, bytes] = {}
        for run in decoded.runs:
            starts[run.start] = run.link_before
            if any(run.start <= seq <= run.end for seq in gone):
                found = links_of_run(rows, run, link_step)
                if found[run.end] != run.link_end:
                    log.warning("block %d: the events of seqs %d-%d do not hash to their stored link (altered?); "
                                "`fleetlog verify` names them", block_id, run.start, run.end)
                links.update(found)
        removal.removed += [(row[SEQ], row[TIME], row[NAMESPACE], links[row[SEQ]]) for row in rows if row[SEQ] in gone]
        kept = []
        for row, was_derived in zip(rows, derived):
            if row[SEQ] in gone:
                continue
            if was_derived:
                row[ID] = None
            row[HASH] = links.get(row[SEQ], row[HASH])
            kept.append(row)

        def link_before(seq: int, links: dict[int, bytes] = links, starts: dict[int, bytes] = starts) -> bytes:
            return links[seq - 1] if seq - 1 in links else starts[seq]

        removal.rewrites.append((block_id, encode_block(kept, link_before) if kept else None))
    removal.removed.sort(key=lambda r: r[0])
    return removal


def apply_removal(conn: sqlite3.Connection, removal: Removal) -> None:
    """Replace the planned blocks by their rewrites, in one transaction of the file."""
    if not removal.rewrites:
        return
    with file_transaction(conn):
        delete_blocks(conn, [block_id for block_id, _ in removal.rewrites])
        for _, block in removal.rewrites:
            if block is not None:
                insert_block(conn, block)
