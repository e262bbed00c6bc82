"""What an attacker with write access to a data_dir can do to a block store, for the tamper tests.

Everything here goes through the file as it is, with the store's own format code: decode a block
(blocks.decode_block), change its events, encode it again (blocks.encode_block) keeping the links
it stored (four bytes per event, the whole link at each run's end, `link_before` of each run) and
write it back in place. No collector is involved.
"""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Callable

from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.blocks import HASH, SEQ, decode_block, encode_block, fill_ids
from fleetlog.collector.store.schema import ROW_MODEL_SCHEMA  # the partition file before blocks
from fleetlog.common import chain
from tests.unit.store_helpers import partition_events, partition_files, source_keys_of

Rows = list[list]
MESSAGE, LEVEL, POS = ROW_COLUMNS.index("message"), ROW_COLUMNS.index("level"), ROW_COLUMNS.index("pos")
_CANONICAL = [ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS]

def main_conn(data_dir: pathlib.Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "events.db")


def part_conn(data_dir: pathlib.Path, partition: pathlib.Path | None = None) -> sqlite3.Connection:
    """The biggest partition file (where the test stores keep all their events), unless named."""
    return sqlite3.connect(partition or partition_files(data_dir / "events.db")[0])


def block_ids(conn: sqlite3.Connection) -> list[int]:
    return [block_id for (block_id,) in conn.execute("SELECT id FROM blocks ORDER BY min_seq, id")]


def decoded(conn: sqlite3.Connection, block_id: int):
    (data,) = conn.execute("SELECT data FROM blocks WHERE id = ?", (block_id,)).fetchone()
    return decode_block(bytes(data))


def write_block(conn: sqlite3.Connection, block_id: int, rows: Rows, link_before: Callable[[int], bytes]) -> None:
    """`rows` encoded as the block `block_id`, in place: its skip columns, filters, payload and
    dedup spans all say what the rows are, as the writer would have written them. No rows: the
    block goes."""
    conn.execute("DELETE FROM block_origins WHERE block = ?", (block_id,))
    if not rows:
        conn.execute("DELETE FROM blocks WHERE id = ?", (block_id,))
        conn.execute("DELETE FROM block_keys WHERE block = ?", (block_id,))
        return
    block = encode_block(rows, link_before)
    conn.execute("UPDATE blocks SET min_seq = ?, max_seq = ?, min_time = ?, max_time = ?, count = ?, min_level = ?,"
                 " namespace = ?, host = ?, summary = ?, bloom = ?, data = ? WHERE id = ?",
                 (block.min_seq, block.max_seq, block.min_time, block.max_time, block.count, block.min_level,
                  block.namespace, block.host, block.summary, block.bloom, block.data, block_id))
    conn.execute("UPDATE block_keys SET requests = ?, users = ? WHERE block = ?",
                 (block.request_bloom, block.user_bloom, block_id))
    conn.executemany("INSERT INTO block_origins(origin, max_pos, min_pos, block) VALUES (?, ?, ?, ?)",
                     ((origin, high, low, block_id) for origin, (low, high) in block.origins.items()))


def rewrite_blocks(data_dir: pathlib.Path, change: Callable[[Rows], Rows], partition: pathlib.Path | None = None) -> None:
    """Each block of the biggest partition (unless named) decoded, `change(rows)` (ROW_COLUMNS, seq order, `hash`
    as the block stored it) applied, and the result written back in place with the stored links
    kept: the runs' link_before, and for a run the change started (a deleted event splits one)
    the whole link of the event before it, which the attacker recomputes from the stored values."""
    links = whole_links(data_dir, partition)
    conn = part_conn(data_dir, partition)
    for block_id in block_ids(conn):
        block = decoded(conn, block_id)
        before = {run.start: run.link_before for run in block.runs}
        write_block(conn, block_id, change(block.rows),
                    lambda start, before=before: before.get(start) or links.get(start - 1) or bytes(32))
    conn.commit()
    conn.close()


def at(seq: int, edit: Callable[[list], None]) -> Callable[[Rows], Rows]:
    """A change that edits the event `seq` (wherever its block is) and keeps the rest."""
    def change(rows: Rows) -> Rows:
        for row in rows:
            if row[SEQ] == seq:
                edit(row)
        return rows
    return change


def without(keep: Callable[[int], bool]) -> Callable[[Rows], Rows]:
    """A change that deletes the events whose seq `keep` refuses."""
    return lambda rows: [row for row in rows if keep(row[SEQ])]


def whole_links(data_dir: pathlib.Path, partition: pathlib.Path | None = None) -> dict[int, bytes]:
    """seq -> the whole chain link, of every event of the biggest partition (unless named), as an
    attacker recomputes them from the stored values."""
    main = main_conn(data_dir)
    keys = source_keys_of(main)
    main.close()
    conn = part_conn(data_dir, partition)
    links = {row[SEQ]: bytes(row[HASH]) for row in partition_events(conn, keys)}
    conn.close()
    return links


def relink(data_dir: pathlib.Path, change: Callable[[Rows], Rows]) -> dict[int, bytes]:
    """The thorough attacker: `change` applied to every block, then every link of the partition
    recomputed from the chain's start and stored (per event and at run ends), and the main file's
    recorded head moved to the new last link. Returns the new links by seq. Only a signature it
    cannot make tells this apart (the test stores keep all their events in one partition)."""
    main = main_conn(data_dir)
    keys = source_keys_of(main)
    conn = part_conn(data_dir)
    changed = {block_id: change(decoded(conn, block_id).rows) for block_id in block_ids(conn)}
    events = sorted((row for rows in changed.values() for row in rows), key=lambda row: row[SEQ])
    assert [row[SEQ] for row in events] == list(range(1, len(events) + 1)), "one partition holds the chain"
    links: dict[int, bytes] = {0: chain.GENESIS}
    for row in events:
        with_id = list(row)
        fill_ids([with_id], keys)
        links[row[SEQ]] = chain.extend(links[row[SEQ] - 1], chain.canonical_values([with_id[i] for i in _CANONICAL]))
        row[HASH] = links[row[SEQ]]
    for block_id, rows in changed.items():
        write_block(conn, block_id, rows, lambda start: links[start - 1])
    conn.commit()
    conn.close()
    main.execute("UPDATE meta SET value = ? WHERE key = 'chain_head'", (links[len(events)].hex(),))
    main.commit()
    main.close()
    return links


def to_row_model(data_dir: pathlib.Path, partition: pathlib.Path) -> int:
    """A partition file of blocks turned back into the row model (the schema before blocks, every
    event a row with its whole link, its full-text row): a data_dir not converted yet. Returns the
    number of rows."""
    main = main_conn(data_dir)
    keys = source_keys_of(main)
    main.close()
    conn = part_conn(data_dir, partition)
    rows = partition_events(conn, keys)
    conn.executescript("DROP TABLE blocks; DROP TABLE block_origins; DROP TABLE block_keys;" + ROW_MODEL_SCHEMA)
    conn.executemany(f"INSERT INTO events({', '.join(ROW_COLUMNS)}) VALUES ({','.join('?' * len(ROW_COLUMNS))})",
                     rows)
    conn.executemany("INSERT INTO events_fts(rowid, message) VALUES (?, ?)", ((row[SEQ], row[MESSAGE]) for row in rows))
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    main = main_conn(data_dir)
    main.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")    # the row model's
    main.commit()
    main.close()
    return len(rows)
