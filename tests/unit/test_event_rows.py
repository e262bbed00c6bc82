"""The writer's fast paths give what they replace: a chunk's rows built column by column
(collector/store/event_rows.py) equal the rows built an event at a time, with and without the C
loop; encode_block(derived_ids=True) is the block of rows whose ids are None; the columns of rows
taken in C are zip's."""

from __future__ import annotations

from typing import Any

import pytest

from fleetlog.collector.store import ROW_COLUMNS, blocks, event_rows


def columns_of(count: int) -> list[list[Any]]:
    """A chunk's columns (position .. flags, id) with empty values, zeros, flags beyond the low bit
    and ids given for some events (the intake's) and not for others (None: the writer's)."""
    return [
        [100 * i for i in range(count)], [1_764_686_245_000_000 + i for i in range(count)],
        ["web" if i % 3 else "" for i in range(count)], [i % 2 * 42 for i in range(count)],
        bytes(i % 8 for i in range(count)), [f"r{i}" if i % 4 else "" for i in range(count)],
        ["alice"] * count, [""] * count, [f"line {i}" for i in range(count)],
        ['{"a":1}' if i % 5 == 0 else "" for i in range(count)], ["general"] * count,
        bytes((i * 37) % 256 for i in range(count)), [f"{i:032x}" if i % 2 else None for i in range(count)]]


def rows_one_at_a_time(first: int, origin: int, received_at: int, host: str, host_ip: str | None,
                       collector: str | None, namespace: str, source: str, log_type: str,
                       columns: list[list[Any]]) -> list[list[Any]]:
    """The writer's rows before event_rows: a Python list an event."""
    return [[s, origin, pos, event_id, time_us, received_at, host, host_ip, collector, namespace,
             source, log_type, app or None, pid or None, level, request_id or None, user or None,
             action or None, message, field or None, tier, flag & 1, None]
            for s, pos, time_us, app, pid, level, request_id, user, action, message, field, tier, flag, event_id
            in zip(range(first, first + len(columns[0])), *columns)]


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("count", [0, 1, 7, 1000])
def test_chunk_rows_equal_the_rows_built_an_event_at_a_time(monkeypatch, native, count):
    if not native:
        monkeypatch.setattr(event_rows, "_native_rows", None)
    args = (11, 3, 1_764_686_246_000_000, "node-1", None, "c1", "default", "file:/a", "application",
            columns_of(count))
    built = event_rows.chunk_rows(*args)
    reference = rows_one_at_a_time(*args)
    assert built == reference
    assert [[type(v) for v in row] for row in built] == [[type(v) for v in row] for row in reference]


def test_or_none_and_low_bits():
    assert event_rows.or_none(["a", "b"]) == ["a", "b"]
    assert event_rows.or_none(["", 0, None]) == [None, None, None]
    assert event_rows.or_none(["a", "", 0, 5]) == ["a", None, None, 5]
    assert event_rows.low_bits(b"\x00\x01\x02\x03\xff") == [0, 1, 0, 1, 1]
    assert event_rows.low_bits([2, 3]) == [0, 1]


def test_derived_ids_leave_the_id_column_out():
    rows = event_rows.chunk_rows(1, 1, 5, "node-1", "10.0.0.1", "c1", "default", "file:/a", "application",
                                 columns_of(50))
    for row in rows:
        row[ROW_COLUMNS.index("hash")] = bytes(32)
        row[ROW_COLUMNS.index("id")] = None
    with_ids = [list(row) for row in rows]
    for i, row in enumerate(with_ids):
        row[ROW_COLUMNS.index("id")] = f"{i:032x}"
    plain = blocks.encode_block(rows, lambda seq: bytes(32))
    derived = blocks.encode_block(with_ids, lambda seq: bytes(32), derived_ids=True)
    assert (derived.data, derived.bloom, derived.summary) == (plain.data, plain.bloom, plain.summary)


def test_columns_of_rows_in_c_are_zips():
    rows = [[i, str(i), None, bytes([i])] for i in range(100)]
    assert blocks._native.columns(rows, 4) == [list(c) for c in zip(*rows)]
    assert blocks._native.columns([], 4) == [[], [], [], []]
    with pytest.raises(ValueError):
        blocks._native.columns([[1, 2], [3]], 2)


def test_runs_with_the_one_run_shortcut_are_the_runs():
    """blocks._runs answers one run at once only when the seqs are exactly consecutive."""
    import itertools
    import operator
    import random

    def reference(seqs: list[int]) -> list[tuple[int, int, int]]:
        steps = map(operator.sub, itertools.islice(seqs, 1, None), seqs)
        ends = [*itertools.compress(range(len(seqs) - 1), map((1).__ne__, steps)), len(seqs) - 1]
        return [(seqs[before + 1], seqs[end], end) for before, end in zip([-1, *ends], ends)]

    rng = random.Random(30)
    for _ in range(5_000):
        n, low = rng.randint(1, 12), rng.randint(-5, 5)
        if rng.random() < 0.7:
            seqs = sorted(rng.sample(range(low, low + n + rng.randint(0, 3)), n))
        else:
            seqs = [rng.randint(0, 6) for _ in range(n)]   # not in seq order: not one run by accident
        assert blocks._runs(seqs) == reference(seqs), seqs
