"""Merging a stream's small blocks (docs/storage-model.md §6).

A transaction of a few events makes blocks of a few events: searchable at once, but poorly
compressed and one more row to skip. The writer merges them later, tiered so that no event is
re-encoded more than a few times: when a stream (one namespace and one host) of a partition has
FAN_IN blocks under a tier's ceiling, each FAN_IN of them (seq order) become one block, which is
then counted in the next tier. Blocks of < 64 events merge into blocks of < 512, those (and a
transaction's blocks of < 1,024) into blocks of < 8,192, the largest a block gets.

A merge is one transaction of the partition file (insert the merged block, delete the old ones),
so a reader sees either the old blocks or the new one, and a crash loses nothing. It takes only
committed blocks (max_seq at most the committed head). The merged block keeps the union of the
rows in seq order; its runs start where constituent runs start, with their link_before, and end
where constituent runs end, with their whole link.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from fleetlog.collector.store.blocks import SEQ, decode_block, encode_block
from fleetlog.collector.store.sqlite_blocks import delete_blocks, file_transaction, insert_block, payload

TIERS = (64, 1_024)     # ceilings (exclusive) of the small tiers
FAN_IN = 8              # blocks of a tier merged together (FAN_IN * 1,024 - 8 < 8,192)


def compact_stream(conn: sqlite3.Connection, namespace: str, host: str, last_seq: int,
                   budget: int | None = None) -> tuple[int, bool]:
    """Merge the stream's small committed blocks, tier by tier, until `budget` events were
    re-encoded (None: no bound); returns (events re-encoded, whether nothing is left to merge)."""
    spent = 0
    floor = 0
    for ceiling in TIERS:
        small = conn.execute(
            "SELECT id, count FROM blocks WHERE host = ? AND namespace = ? AND count >= ? AND count < ?"
            " AND max_seq <= ? ORDER BY min_seq", (host, namespace, floor, ceiling, last_seq)).fetchall()
        floor = ceiling
        for start in range(0, len(small) - FAN_IN + 1, FAN_IN):
            if budget is not None and spent >= budget:
                return spent, False
            group = small[start:start + FAN_IN]
            if merge_blocks(conn, [block_id for block_id, _ in group]):
                spent += sum(count for _, count in group)
    return spent, True


def merge_blocks(conn: sqlite3.Connection, block_ids: list[int]) -> bool:
    """Replace the blocks by one, in one transaction; False when one of them went meanwhile."""
    rows: list[list[Any]] = []
    starts: dict[int, bytes] = {}
    with file_transaction(conn):
        for block_id in block_ids:
            data = payload(conn, block_id)
            if data is None:
                return False      # merged or purged since it was listed: nothing written yet
            decoded = decode_block(data)
            rows += decoded.rows
            starts.update((run.start, run.link_before) for run in decoded.runs)
        rows.sort(key=lambda row: row[SEQ])
        # A row's `hash` is its 4-byte prefix, or the whole link at a run's end: the merged runs
        # end where constituent runs end, so encode_block finds the whole links it keeps.
        merged = encode_block(rows, starts.__getitem__)
        delete_blocks(conn, block_ids)
        insert_block(conn, merged)
    return True
