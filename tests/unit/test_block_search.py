"""Reading a store of blocks (collector/store/sqlite_reader.py): searches over many blocks and
streams return exactly the rows a full sort would, in both orders, with limits, pages and keyset
paging; follow reads every seq once; a merge of blocks while a search is paused loses and repeats
nothing; and a limited search opens only the blocks it needs."""

from __future__ import annotations

import pathlib
import random
import sqlite3
from dataclasses import replace

import pytest

from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.store import EVENT_COLUMNS, ROW_COLUMNS, merge_ranges, sqlite_block_merge
from fleetlog.collector.store.blocks import ID, SEQ, encode_block
from fleetlog.collector.store.partitions import partition_path
from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore
from fleetlog.collector.store.sqlite_blocks import delete_blocks, insert_block
from fleetlog.common import chain
from tests.unit.block_helpers import all_headers, opened_blocks
from tests.unit.store_helpers import event_rows, incoming, partition_events, source_keys_of

DAY = 86_400_000_000
T0 = 1_764_547_200_000_000     # 2025-12-01T00:00:00Z
HOSTS = ("web-1", "web-2", "web-3", "db-1")
_COLUMNS = ", ".join(EVENT_COLUMNS)


def _build(path, *, transactions: int, overlapping: bool, seed: int = 7) -> SqliteStore:
    """A store of several streams and partitions. `overlapping`: each transaction's times spread
    over two days, so every block overlaps every other; else transactions follow each other in
    time, as a live collector's do."""
    rng = random.Random(seed)
    store = SqliteStore(str(path), "normal", collector="c1")
    position = {host: 0 for host in HOSTS}
    for n in range(transactions):
        batches = []
        for host in HOSTS:
            size = rng.randint(1, 30)
            positions = list(range(position[host] + 1, position[host] + size + 1))
            position[host] += size
            if overlapping:
                times = [T0 + rng.randrange(2 * DAY) for _ in positions]
            else:
                times = [T0 + n * 60_000_000 + rng.randrange(60_000_000) for _ in positions]
            batches.append(incoming(
                host, "app.log", positions, time_us=times, level=rng.choice((3, 4, 6, 6, 6)),
                namespace="payments" if host == "db-1" else "default",
                messages=[f"{host} event {p} word{p % 7}" for p in positions],
                request_ids=[f"req-{p % 11}" for p in positions]))
        store.store_batch(batches, T0)
    return store


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory):
    path = tmp_path_factory.mktemp("overlapping") / "events.db"
    store = _build(path, transactions=25, overlapping=True)
    truth = event_rows(store, f"SELECT {_COLUMNS} FROM events")
    store.close()
    return str(path), truth


@pytest.fixture
def reader(overlapping):
    reader = SqliteReader(overlapping[0])
    yield reader
    reader.close()


def _seqs(reader, spec, **kwargs) -> list[int]:
    return [row[0] for page in reader.search(spec, **kwargs) for row in page]


def _sorted(rows, desc: bool) -> list[int]:
    return [r[0] for r in sorted(rows, key=lambda r: (r[2], r[0]), reverse=desc)]


_T, _HOST, _LEVEL, _NS, _MSG = (EVENT_COLUMNS.index(c) for c in ("time", "host", "level", "namespace", "message"))
FILTERS = [
    ({}, lambda r: True),
    ({"host": "web-2"}, lambda r: r[_HOST] == "web-2"),
    ({"min_level": "warning"}, lambda r: r[_LEVEL] <= 4),
    ({"message": "word3"}, lambda r: "word3" in r[_MSG]),
    ({"request_id": "req-4"}, lambda r: r[EVENT_COLUMNS.index("request_id")] == "req-4"),
    ({"since": "2025-12-01T18:00:00Z", "until": "2025-12-02T06:00:00Z"},
     lambda r: T0 + 18 * 3_600_000_000 <= r[_T] <= T0 + 30 * 3_600_000_000),
    ({"namespace": "payments", "min_level": "error"}, lambda r: r[_NS] == "payments" and r[_LEVEL] <= 3),
]


@pytest.mark.parametrize("raw,test", FILTERS, ids=[repr(raw) for raw, _ in FILTERS])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_limited_searches_return_the_first_rows_of_the_full_order(overlapping, reader, raw, test, order):
    _, truth = overlapping
    expected = _sorted([r for r in truth if test(r)], order == "desc")
    assert expected, "the dataset holds matches"
    spec = build_filter_spec(raw)
    for limit in (1, 7, 50, 0):
        assert _seqs(reader, spec, order=order, limit=limit) == (expected[:limit] if limit else expected)
    assert _seqs(reader, spec, order=order, page_size=13) == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_keyset_pages_follow_each_other_without_a_gap_or_a_repeat(overlapping, reader, order):
    _, truth = overlapping
    desc = order == "desc"
    expected = _sorted(truth, desc)
    by_seq = {r[0]: r for r in truth}
    spec = build_filter_spec({})
    got: list[int] = []
    while True:
        page = _seqs(reader, spec, order=order, limit=40)
        if not page:
            break
        got += page
        last = by_seq[page[-1]]
        key = (last[2], last[0], "main")
        spec = replace(spec, before_key=key) if desc else replace(spec, after_key=key)
    assert got == expected


def test_namespace_scope_holds_on_every_block(overlapping, reader):
    _, truth = overlapping
    spec = replace(build_filter_spec({}), allowed_namespaces=("payments",))
    assert _seqs(reader, spec) == _sorted([r for r in truth if r[_NS] == "payments"], False)
    assert _seqs(reader, replace(spec, allowed_namespaces=())) == []


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_many_overlapping_blocks_are_read_in_chunks_with_the_same_result(overlapping, reader, monkeypatch, order):
    """Memory: when more rows than MAX_HELD_ROWS wait in decoded blocks, each block keeps a chunk
    and is decoded again for the next one; the order is the same."""
    _, truth = overlapping
    monkeypatch.setattr(sqlite_block_merge, "MAX_HELD_ROWS", 40)
    monkeypatch.setattr(sqlite_block_merge, "MIN_CHUNK", 3)
    assert _seqs(reader, build_filter_spec({}), order=order) == _sorted(truth, order == "desc")


def test_follow_reads_every_seq_once_in_order(overlapping, reader):
    _, truth = overlapping
    for spec, test in ((None, lambda r: True), (build_filter_spec({"host": "web-3"}), lambda r: r[_HOST] == "web-3")):
        cursor: dict[str, int] = {}
        got: list[int] = []
        while chunks := reader.read_after(cursor, spec, limit=17):
            [(chain_id, rows)] = chunks
            assert 0 < len(rows) <= 17
            got += [row[0] for row in rows]
            cursor = {chain_id: rows[-1][0]}
        assert got == sorted(r[0] for r in truth if test(r))


def test_event_ids_and_partition_scans_come_from_the_blocks(overlapping):
    path, truth = overlapping
    store = SqliteStore(path, "normal", collector="c1")
    reader = SqliteReader(path)
    try:
        ids = {r[0]: r[1] for r in truth}
        for seq in (1, 2, len(truth) // 2, len(truth)):
            assert reader.event_id("main", seq) == ids[seq]
        assert reader.event_id("main", len(truth) + 1) is None
        keys = source_keys_of(store.conn)
        for part in store.partitions():
            conn = sqlite3.connect(partition_path(path, part.name))
            rows = partition_events(conn, keys)
            conn.close()
            links = {row[SEQ]: row[-1] for row in rows}
            ranges = merge_ranges(sorted(links))
            scan = reader.scan_partition(part)
            assert scan.count == len(rows) == part.count
            assert scan.ranges == ranges
            assert scan.anchors == [(end, links[end]) for _, end in ranges]
            assert (scan.oldest_us, scan.newest_us) == (min(r[4] for r in rows), max(r[4] for r in rows))
    finally:
        reader.close()
        store.close()


def test_a_limited_search_decodes_only_the_newest_blocks(tmp_path, monkeypatch):
    path = tmp_path / "events.db"
    store = _build(path, transactions=30, overlapping=False)
    truth = event_rows(store, f"SELECT {_COLUMNS} FROM events")
    store.close()
    blocks = all_headers(path)
    assert len(blocks) >= 5 * len(HOSTS)     # whatever compaction merged
    opened = opened_blocks(monkeypatch)
    reader = SqliteReader(str(path))
    try:
        assert _seqs(reader, build_filter_spec({}), order="desc", limit=10) == _sorted(truth, True)[:10]
        # Only blocks that may hold a row newer than the 10th newest are decoded.
        tenth = sorted((r[2] for r in truth), reverse=True)[9]
        assert opened and all(b.max_time >= tenth for b in opened)
        assert len(opened) <= 2 * len(HOSTS), len(opened)
        opened.clear()
        assert _seqs(reader, build_filter_spec({}), order="asc", limit=10) == _sorted(truth, False)[:10]
        assert len(opened) <= 2 * len(HOSTS)
    finally:
        reader.close()


def test_a_request_id_search_decodes_only_blocks_whose_bloom_may_hold_it(tmp_path, monkeypatch):
    path = tmp_path / "events.db"
    store = SqliteStore(str(path), "normal", collector="c1")
    for n in range(40):
        store.store_batch([incoming(host, "app.log", list(range(n * 50 + 1, n * 50 + 51)),
                                    time_us=[T0 + n * 1_000_000 + p for p in range(50)],
                                    request_ids=[f"{host}-{n}-{p}" for p in range(50)]) for host in HOSTS], T0)
    store.close()
    opened = opened_blocks(monkeypatch)
    reader = SqliteReader(str(path))
    try:
        rows = [r for page in reader.search(build_filter_spec({"request_id": "web-2-17-33"})) for r in page]
        assert [(r[_HOST], r[_MSG]) for r in rows] == [("web-2", f"line {17 * 50 + 34}")]
        # Of the blocks (however compaction merged them), the bloom lets through the one that holds
        # it, and few others (~1 % each).
        blocks = all_headers(path)
        assert len(blocks) >= 4 * len(HOSTS)
        assert 1 <= len(opened) <= 3 and any(b.host == "web-2" and b.min_time <= rows[0][_T] <= b.max_time
                                             for b in opened)
    finally:
        reader.close()


def _merge_all_blocks(path: str) -> int:
    """What the writer's compaction does, done by hand on a closed store: in each partition file,
    one transaction replaces every block of a stream by one block of their rows. Returns how many
    blocks went."""
    main = sqlite3.connect(path)
    keys = source_keys_of(main)
    main.close()
    links: dict[int, bytes] = {}
    files = sorted((pathlib.Path(path).parent / "partitions").glob("*.db"))
    contents = {}
    for file in files:
        conn = sqlite3.connect(file)
        contents[file] = partition_events(conn, keys)
        conn.close()
        links.update((row[SEQ], row[-1]) for row in contents[file])
    removed = 0
    for file in files:
        conn = sqlite3.connect(file, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        streams: dict[tuple[str, str], list] = {}
        for row in contents[file]:
            row[ID] = None
            streams.setdefault((row[ROW_COLUMNS.index("namespace")], row[ROW_COLUMNS.index("host")]), []).append(row)
        old = [block_id for (block_id,) in conn.execute("SELECT id FROM blocks")]
        for rows in streams.values():
            insert_block(conn, encode_block(rows, lambda seq: links.get(seq - 1, chain.GENESIS)))
        delete_blocks(conn, old)
        conn.execute("COMMIT")
        conn.close()
        removed += len(old) - len(streams)
    return removed


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_merge_while_a_search_is_paused_loses_and_repeats_nothing(tmp_path, order):
    path = tmp_path / "events.db"
    store = _build(path, transactions=12, overlapping=True)
    truth = event_rows(store, f"SELECT {_COLUMNS} FROM events")
    store.close()
    expected = _sorted(truth, order == "desc")
    reader = SqliteReader(str(path))
    try:
        pages = reader.search(build_filter_spec({}), order=order, page_size=25)
        got = [row[0] for row in next(pages)]
        assert _merge_all_blocks(str(path)) > 20
        got += [row[0] for page in pages for row in page]
        assert got == expected
        # A search that starts after the merge reads the merged blocks: the same rows.
        assert _seqs(reader, build_filter_spec({}), order=order) == expected
        assert [row[0] for _, rows in reader.read_after({}, None, limit=10_000) for row in rows] == sorted(expected)
    finally:
        reader.close()


def _store_of_keys(path) -> None:
    store = SqliteStore(str(path), "normal", collector="c1")
    for n in range(20):
        store.store_batch([incoming(host, "app.log", list(range(n * 50 + 1, n * 50 + 51)),
                                    time_us=[T0 + n * 1_000_000 + p for p in range(50)],
                                    request_ids=[f"{host}-{n}-{p}" for p in range(50)],
                                    users=[f"{host}-user-{n}" for _ in range(50)]) for host in HOSTS], T0)
    store.close()


def _keyed_search(path, raw: dict[str, str]) -> list[tuple[str, str]]:
    reader = SqliteReader(str(path))
    try:
        return [(r[_HOST], r[_MSG]) for page in reader.search(build_filter_spec(raw)) for r in page]
    finally:
        reader.close()


def test_a_file_written_before_block_keys_gets_them_at_the_next_start(tmp_path, monkeypatch):
    """A partition file of session 8's layout (request ids and users in the word filter, no
    block_keys) is given a row of block_keys for every block in one transaction when the writer
    opens it; a block that does not decode gets filters that hold everything, so a search still
    opens it and says it is unreadable."""
    path = tmp_path / "events.db"
    _store_of_keys(path)
    [file] = (tmp_path / "partitions").glob("*.db")
    conn = sqlite3.connect(file)
    expected = dict(conn.execute("SELECT block, requests FROM block_keys"))
    conn.execute("DROP TABLE block_keys")
    altered = conn.execute("SELECT max(id) FROM blocks").fetchone()[0]
    conn.execute("UPDATE blocks SET data = x'28b52ffd00' WHERE id = ?", (altered,))
    conn.commit()
    conn.close()
    SqliteStore(str(path), "normal", collector="c1").close()
    conn = sqlite3.connect(file)
    migrated = dict(conn.execute("SELECT block, requests FROM block_keys"))
    conn.close()
    assert migrated.keys() == expected.keys()
    assert {b: f for b, f in migrated.items() if b != altered} == {b: f for b, f in expected.items() if b != altered}
    assert migrated[altered] == b"\xff" * 8
    opened = opened_blocks(monkeypatch)
    with pytest.raises(Exception, match="not a readable block"):
        _keyed_search(path, {"request_id": "web-2-17-33"})
    assert any(b.id == altered for b in opened)


def test_request_id_and_user_searches_read_the_key_filters(tmp_path, monkeypatch):
    path = tmp_path / "events.db"
    _store_of_keys(path)
    opened = opened_blocks(monkeypatch)
    assert _keyed_search(path, {"request_id": "web-2-17-33"}) == [("web-2", f"line {17 * 50 + 34}")]
    assert len(opened) <= 2
    opened.clear()
    found = _keyed_search(path, {"user": "db-1-user-3,web-3-user-19"})
    assert sorted(found) == sorted([("db-1", f"line {3 * 50 + p + 1}") for p in range(50)]
                                   + [("web-3", f"line {19 * 50 + p + 1}") for p in range(50)])
    assert {b.host for b in opened} == {"db-1", "web-3"}
    # Both at once: the events of that user with that request id.
    assert _keyed_search(path, {"user": "web-2-user-17", "request_id": "web-2-17-33"}) == [("web-2", "line 884")]
    assert _keyed_search(path, {"user": "web-2-user-16", "request_id": "web-2-17-33"}) == []


def test_a_filter_altered_into_text_neither_hides_nor_breaks_a_search(tmp_path):
    """A word or key filter that is not a blob any more (someone edited the file): the block is
    opened and matched exactly, no traceback; verify names it (test_tamper_evidence)."""
    path = tmp_path / "events.db"
    _store_of_keys(path)
    [file] = (tmp_path / "partitions").glob("*.db")
    conn = sqlite3.connect(file)
    conn.execute("UPDATE block_keys SET requests = 'x', users = 7")
    conn.execute("UPDATE blocks SET bloom = 'x'")
    conn.commit()
    conn.close()
    assert _keyed_search(path, {"request_id": "web-2-17-33"}) == [("web-2", f"line {17 * 50 + 34}")]
    assert len(_keyed_search(path, {"user": "db-1-user-3"})) == 50
    assert sorted(_keyed_search(path, {"message": "884"})) == [(host, "line 884") for host in sorted(HOSTS)]
