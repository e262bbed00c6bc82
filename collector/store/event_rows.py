"""The rows (ROW_COLUMNS) of one chunk's new events, built column by column; or those columns
themselves (chunk_columns), which is how the SQLite writer keeps a transaction's events.

The writer chains and encodes rows; a chunk arrives as columns. Each column is put into its stored
form with one C-speed step (absent optional values become None, never "" or 0: they are stored and
hashed as NULL), and the rows are then made in one C loop (`_blocks_native.rows`), which leaves them
untracked by the cycle collector: a list an event built in Python made the collector walk every
row of a transaction again and again (measured: half of the rows' cost, and a fifth of encoding
them). Same values, same types, as a row built in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleetlog.collector.store import ROW_COLUMNS

try:
    from fleetlog.collector.store._blocks_native import rows as _native_rows
except ImportError:             # not built: rows are made in Python
    _native_rows = None  # type: ignore[assignment]

_LOW_BIT = bytes(i & 1 for i in range(256))


def or_none(values: Sequence[Any]) -> list[Any]:
    """`[v or None for v in values]`, skipping the Python loop when none or all are empty."""
    if all(values):
        return list(values)
    if not any(values):
        return [None] * len(values)
    return [v or None for v in values]


def low_bits(flags: Sequence[int]) -> list[int]:
    """`[f & 1 for f in flags]` (the `truncated` bit of the wire's flags)."""
    if isinstance(flags, bytes | bytearray):
        return list(flags.translate(_LOW_BIT))
    return [f & 1 for f in flags]


def chunk_rows(first_seq: int, origin: int, received_at: int, host: str, host_ip: str | None,
               collector: str | None, namespace: str, source: str, log_type: str,
               columns: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows for seqs first_seq.. of `columns` (position, time_us, app, pid, level, request_id, user,
    action, message, fields_json, tier, flags, id, equally long; an id None where the caller
    fills it in); `hash` is None."""
    ordered = chunk_columns(first_seq, origin, received_at, host, host_ip, collector, namespace, source, log_type,
                            columns)
    if _native_rows is not None:
        return _native_rows(ordered, len(ordered[0]))
    return [list(row) for row in zip(*ordered)]


def chunk_columns(first_seq: int, origin: int, received_at: int, host: str, host_ip: str | None,
                  collector: str | None, namespace: str, source: str, log_type: str,
                  columns: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The same events as chunk_rows, kept by column: one list per ROW_COLUMNS name (the SQLite
    writer keeps a transaction's events so)."""
    positions, times, apps, pids, levels, request_ids, users, actions, messages, fields, tiers, flags, ids = columns
    count = len(positions)

    def same(value: Any) -> list[Any]:
        """A column with one value for every event."""
        return [value] * count

    by_name = {
        "seq": list(range(first_seq, first_seq + count)), "origin": same(origin), "pos": list(positions),
        "id": list(ids), "time": list(times), "received_at": same(received_at), "host": same(host),
        "host_ip": same(host_ip), "collector": same(collector), "namespace": same(namespace),
        "source": same(source), "log_type": same(log_type), "app": or_none(apps), "pid": or_none(pids),
        "level": list(levels), "request_id": or_none(request_ids), "user": or_none(users),
        "action": or_none(actions), "message": list(messages), "fields": or_none(fields), "tier": list(tiers),
        "truncated": low_bits(flags), "hash": same(None),
    }
    return [by_name[name] for name in ROW_COLUMNS]
