"""Late materialisation (collector/store/block_columns.py and the search's sieve): a block opened
column by column gives the rows decode_block gives, and a search that builds rows only for the
events its sieve lets through returns exactly the rows row_predicate accepts among all of them,
on values that make substring searches tricky (case, accents, NUL, prefixes of each other)."""

from __future__ import annotations

import collections
import sqlite3

import pytest

from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.block_columns import BlockColumns
from fleetlog.collector.store.blocks import decode_block
from fleetlog.collector.store.row_match import row_predicate
from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore
from tests.unit.store_helpers import event_rows, incoming

T0 = 1_764_547_200_000_000
MESSAGES = ["Café ouvert à 9h", "CAFE closed", "user bob logged in", "user bobby logged in", "bob\x00hidden tail",
            "timeout after 30s", "Timeouts: 3", "snake_case word", "ÜBER straße", "x", "", "bob",
            "Café-X ready", "CAFÉ-x", "cafe-x", "İx-y"]
USERS = ["bob", "bobby", "", "Bob", "b\x00ob", "alice"]
REQUESTS = ["req-1", "req-10", "req-100", "", "REQ-1", "req-1\x00x"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("columns") / "events.db"
    store = SqliteStore(str(path), "normal", collector="c1")
    n = 0
    for batch in range(6):
        batches = []
        for host in ("web-1", "web-2"):
            positions = list(range(n + 1, n + 25))
            n += 24
            batches.append(incoming(host, "app.log", positions, level=(3, 6, 4)[batch % 3],
                                    time_us=[T0 + (p * 7919) % 86_400_000_000 for p in positions],
                                    messages=[MESSAGES[p % len(MESSAGES)] for p in positions],
                                    users=[USERS[p % len(USERS)] for p in positions],
                                    request_ids=[REQUESTS[p % len(REQUESTS)] for p in positions]))
        store.store_batch(batches, T0)
    rows = [list(r) for r in event_rows(store, f"SELECT {', '.join(ROW_COLUMNS)} FROM events")]
    store.close()
    return str(path), rows


def test_columns_give_the_rows_decode_block_gives(store):
    path, _ = store
    from tests.unit.store_helpers import partition_files
    for file in partition_files(path):
        conn = sqlite3.connect(file)
        for (data,) in conn.execute("SELECT data FROM blocks"):
            block = BlockColumns(bytes(data))
            rows = decode_block(bytes(data)).rows
            assert block.rows() == rows
            assert block.rows([0, len(rows) - 1]) == [rows[0], rows[-1]]
        conn.close()


SPECS = [{"message": "cafe"}, {"message": "CAFÉ"}, {"message": "caf*"}, {"message": "bob"}, {"message": "timeout"},
         {"message": "timeout*"}, {"message": '"logged in"'}, {"message": "snake_case"}, {"message": "case"},
         {"message": "strasse"}, {"message": "über"}, {"message": "hidden"}, {"message": "x"},
         {"message": "café-x"}, {"message": "CAFÉ-X"}, {"message": "cafe-x"}, {"message": "timeouts:"},
         {"message": "İx-y"}, {"message": "ix-y"}, {"message": '"ouvert à"'}, {"message": "-x"},
         {"user": "bob"}, {"user": "Bob,alice"}, {"user": "bob*"}, {"user": "b"}, {"request_id": "req-1"},
         {"request_id": "req-10"}, {"request_id": "REQ-1"}, {"request_id": "req-1*"},
         {"min_level": "warning"}, {"level": "warning"}, {"level": "error,info"},
         {"since": "2025-12-01T06:00:00Z", "until": "2025-12-01T12:00:00Z"},
         {"user": "bob", "message": "logged", "min_level": "error"}]


@pytest.mark.parametrize("raw", SPECS, ids=[repr(raw) for raw in SPECS])
def test_a_sieved_search_returns_what_row_predicate_accepts(store, raw):
    path, rows = store
    spec = build_filter_spec(raw)
    test = row_predicate(spec, None)
    expected = [r[0] for r in sorted(rows, key=lambda r: (r[4], r[0]), reverse=True) if test(r)]
    reader = SqliteReader(path)
    try:
        got = [row[0] for page in reader.search(spec, order="desc") for row in page]
        assert got == expected
        followed = [row[0] for _, page in reader.read_after({}, spec, limit=10_000) for row in page]
        assert followed == sorted(expected)
    finally:
        reader.close()


@pytest.mark.parametrize("raw", [{}, {"min_level": "warning"}, {"level": "info"}, {"since": "2025-12-01T06:00:00Z"},
                                 {"user": "bob"}, {"message": "timeout"}])
@pytest.mark.parametrize("width", [2 * 3_600_000_000, 2 * 86_400_000_000])
def test_histograms_counted_from_columns_or_rows_agree_with_the_rows(store, raw, width):
    """Blocks across buckets count from their time and level columns, blocks inside one bucket
    from their levels alone (two days wide), filters beyond time and level from rows."""
    path, rows = store
    spec = build_filter_spec(raw)
    test = row_predicate(spec, None)
    start = T0 - 3_600_000_000
    expected = collections.Counter(((r[4] - start) // width, r[14]) for r in rows
                                   if test(r) and start <= r[4] < start + 10 * width)
    reader = SqliteReader(path)
    try:
        got = reader.histogram(spec, start, width, 10)
    finally:
        reader.close()
    assert got == sorted((bucket, level, count) for (bucket, level), count in expected.items())


@pytest.mark.parametrize("values", [["bob", "bobby", "", "xbob", "bob"], ["Café", "CAFE", "cafe au lait", "é"],
                                    ["a", "a", "a"], ["", "", "x"], ["alice", "bob"]])
def test_values_found_in_the_joined_text_are_exactly_those_that_hold_the_needle(values):
    from fleetlog.collector.store.blocks import encode_block, fold

    rows = []
    for seq, value in enumerate(values, 1):
        row = dict.fromkeys(ROW_COLUMNS)
        row.update(seq=seq, origin=1, pos=seq, time=T0 + seq, received_at=T0, host="h", namespace="n", level=6,
                   message=value, user=value, tier="general", truncated=0, hash=bytes(32))
        rows.append([row[c] for c in ROW_COLUMNS])
    block = BlockColumns(encode_block(rows, lambda seq: bytes(32)).data)
    for needle in ("bob", "b", "", "cafe", "café", "a", "x", "zzz", "b\x00b"):
        assert block.containing("user", [needle], whole=True) == [i for i, v in enumerate(values) if v == needle]
        assert block.containing("message", [needle], whole=False) == [i for i, v in enumerate(values) if needle in v]
        folded = fold(needle)
        assert block.containing("message", [folded], folded=True) == [
            i for i, v in enumerate(values) if folded in fold(v)]
        assert block.containing("message", [folded], folded=True, among=[0, len(values) - 1]) == [
            i for i in (0, len(values) - 1) if folded in fold(values[i])]
