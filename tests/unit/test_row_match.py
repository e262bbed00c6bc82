"""collector/store/row_match.py: a search filter evaluated on decoded rows selects exactly what the
row model's SQL (sqlite_query.compile_where over `events` and FTS5) selected, and a block is only
skipped when none of its rows matches."""

from __future__ import annotations

import dataclasses
import random
import sqlite3

import pytest

from fleetlog.collector.filters import FilterSpec, build_filter_spec
from fleetlog.collector.store import ROW_COLUMNS, blocks
from fleetlog.collector.store.blocks import EncodedBlock, encode_block
from fleetlog.collector.store.row_match import (
    block_may_match,
    keys_may_match,
    needs_ids,
    row_predicate,
    sqlite_time_text,
)
from fleetlog.collector.store.schema import MAIN_SCHEMA, ROW_MODEL_SCHEMA
from fleetlog.collector.store.sqlite_blocks import BlockHeader
from fleetlog.collector.store.sqlite_hosts import host_origins_sql
from fleetlog.common.errors import UsageError
from tests.unit.row_model_sql import compile_where, register_functions

BASE_US = 1_700_000_000_000_000          # 2023-11-14 22:13:20 UTC
NOW_US = BASE_US + 2 * 86_400_000_000

ORIGINS = {1: ("web-1", "app.log"), 2: ("web-1", "journal"), 3: ("web_2", "app.log"), 4: ("db-1", "journal"),
           5: ("DB-1", "app.log")}
ADDRESSES = {"web-1": "10.0.0.1", "db-1": "10.0.1.7"}

# Words the messages are made of: case, accents (composed and not), punctuation inside words,
# LIKE and GLOB metacharacters, underscores, scripts without spaces. Kept out: the characters on
# which blocks.tokens and FTS5's unicode61 disagree (compatibility forms such as ligatures,
# superscripts and fullwidth letters; letters with two diacritics; non-Latin marks; symbols,
# emoji and private-use characters next to letters; a capital sigma ending a word).
WORDS = ["error", "Error", "ERROR", "errors", "warn", "GET", "get", "/api/v1/users", "user@x", "user@xy",
         "abc-123", "abc 123", "abc_123", "abc123", "Café", "café", "CAFE", "ÉCOLE", "école", "naïve", "naive",
         "Straße", "strasse", "snake_case", "snake case", "100%", "50%off", "a_b", "a%b", "C:\\temp\\file_1",
         "x*y", "[bracket]", "q?", "日本語", "テキスト", "Ωmega", "ωmega", "e\u0301te", "été", "__init__", "_",
         "--", "-", "émoji 🙂", "done.", "token=ABC", "id:42", "42", "4242", "line\nbreak", "tab\there",
         "o'brien", "path/to/x", "résumé", "RESUME", "logged", "in"]


def _events(count: int = 320) -> list[list]:
    rng = random.Random(30)
    rows, times, positions = [], [], dict.fromkeys(ORIGINS, 0)
    special_times = [-1, -1_500_000, -1_000_000, -86_400_000_000 + 123, 0, BASE_US, BASE_US + 999_999]
    for seq in range(1, count + 1):
        origin = rng.choice(list(ORIGINS))
        host = ORIGINS[origin][0]
        positions[origin] += rng.randint(1, 300)
        if seq <= len(special_times):
            time = special_times[seq - 1]
        elif times and rng.random() < 0.1:
            time = rng.choice(times)                                  # ties for the keyset bounds
        else:
            time = BASE_US + rng.randrange(3 * 86_400_000_000)
            time -= time % 1_000_000 if rng.random() < 0.2 else 0     # whole seconds
        times.append(time)
        if rng.random() < 0.05:
            message = rng.choice(["", "nul\x00after error", "x\x00y ABC", "   "])
        else:
            message = rng.choice([" ", " ", " ", ", ", "\t", "-", "_"]).join(rng.sample(WORDS, rng.randint(1, 6)))
        level = rng.choice([6, 6, 6, 7, 5, 4, 3, 2, 1, 0])
        rows.append([
            seq, origin, positions[origin], f"id{seq:04x}", time, time + rng.randrange(5_000_000), host,
            ADDRESSES.get(host) if rng.random() < 0.8 else None, rng.choice([None, "c1", "C2"]),
            rng.choice(["default", "default", "payments", "Payments", "web", None]),
            rng.choice(["file:/var/log/app.log", "journal", "file:/x_y", None]),
            rng.choice(["application", "access", "audit", None]),
            rng.choice([None, "nginx", "NGINX", "api", "api-gw", "worker_1"]),
            rng.choice([None, 0, 1, 12, 123]), level,
            rng.choice([None, None, "req-1", "REQ-1", "req-10", "abc?d", "a[b]c", "x*y", "r\x00nul", "é-req"]),
            rng.choice([None, None, "alice", "Alice", "bob@example.com", "BOB@EXAMPLE.COM", "élodie", "o_o", "100%"]),
            rng.choice([None, "login", "LOGIN", "logout", "user.create"]), message,
            rng.choice([None, '{"k":"v"}', '{"a":1}']), rng.choice(["general", "audit"]), rng.choice([None, 0, 1]),
            bytes(32)])
    return rows


# CLI-like flag values, a few per flag: exact values, wildcards, lists, case variants, corners.
FLAGS: dict[str, list[str]] = {
    "since": ["2023-11-15T00:00:00Z", "2023-11-14", "1d", "1970-01-01T00:00:00Z"],
    "until": ["2023-11-15T12:00:00Z", "2023-11-16", "12h", "1969-12-31T23:59:59Z"],
    "date": ["2023-11-14", "2023-11-15 1", "2023-11-15 10", "2023-11-14 22:1", "2023-11", "2023-1", "1969-12-31",
             "1970", "2023-11-16T0", "1969-12-31 23:59:59.5"],
    "min_level": ["error", "warning", "debug", "emerg", "notice"],
    "level": ["info", "error,warning", "3", "debug,emerg", "crit"],
    "request_id": ["req-1", "REQ-1", "req-*", "*?*", "a[b]c", "a[*", "x*y", "*", "r*", "REQ*", "abc?d", "é-*", "r*nul"],
    "user": ["alice", "Alice,bob@example.com", "*@example.com", "é*", "*", "*%", "o_o", "nobody"],
    "host": ["web-1", "web-*,db-1", "10.0.0.*", "10.0.1.7", "DB-*", "*_*", "nohost"],
    "message": ["error", "ERROR", "err*", "abc-123", "user@x", "ecole", "École", "cafe*", '"abc 123"',
                '"user@x logged"', "snake_case", "_", "__", "-", "--", "*", "100%", "a_b", "c:\\temp", "x", "y",
                "after", "straße", "strasse", "naïve", "abc-12*", "abc-*", "a*b", '"_"', '"%"', "42", "4*",
                "error warn", "GET /api/v1/*", "été", "ete", "e\u0301te", "日本語", "テキスト", "Ωmega", "init",
                "__init__", '"snake case"', "x*y", "[bracket]", "q?", "o'brien", "ré*", "RÉSUMÉ", "tab", "line",
                "done.", "token=abc", "id:4*", "nul", "abc**", "🙂", '"ERROR, warn"', "e*", '"École"', '"CAFÉ"', "Café-", '"y ABC"', "nul-after"],
    "message_regex": ["ab+c", "(?i)error", "^GET", "\\d{3}", "é", "[[:upper:]]{4}", "caf(é|e)", "(?s)nul.after",
                      "^$"],
    "log_type": ["application", "access,audit", "a*", "*"],
    "source": ["journal", "file:*", "*_*", "file:/x_y"],
    "namespace": ["payments", "Payments", "pay*", "default,web", "*"],
    "app": ["nginx", "NGINX", "api*", "*_*", "*"],
    "action": ["login", "LOGIN,logout", "user.*", "*"],
    "where": ["app=ng%", "app=NG%", "level=err%", "level=ERROR", "time=2023-11-15 %", "time=%.000000",
              "time=1969-12-31 23:59:59.5%", "time=1970-01-01 00:00:00.0000-1", "received_at=2023-11-1%",
              "pid=1%", "message=%abc_123%", "message=%100%%", "message=%c:\\temp%", "user=%@EXAMPLE.COM",
              "host=web_2", "host=web_%", "truncated=1", "seq=1%", "id=id00%", 'fields=%"k"%', "host_ip=10.%",
              "collector=c%", "tier=general;app=%", "message=", "request_id=r%", "namespace=%ay%",
              "message=%é%", "message=%É%", "message=%nul%", "action=%.%", "source=%/x\\_y", "message=%after%", "request_id=r%l"],
}


def _raw_filters() -> list[dict[str, str]]:
    singles = [{flag: value} for flag, values in FLAGS.items() for value in values]
    rng = random.Random(31)
    combos = []
    for _ in range(350):
        flags = rng.sample(sorted(FLAGS), rng.randint(2, 4))
        combos.append({flag: rng.choice(FLAGS[flag]) for flag in flags})
    return [{}, *singles, *combos]


def _specs(rows: list[list]) -> list[FilterSpec]:
    """Every raw filter as built by the CLI's validation, and some with the caller's scope, a
    follow position or a console page's keyset bound on top."""
    rng = random.Random(32)
    specs = []
    for raw in _raw_filters():
        try:
            spec = build_filter_spec(raw, now=NOW_US)
        except UsageError:     # a combination the CLI refuses (--since later than --until)
            continue
        specs.append(spec)
        row = rng.choice(rows)
        variant = rng.choice([
            {"allowed_namespaces": rng.choice([("payments",), ("default", "web"), (), ("Payments", "elsewhere")])},
            {"after_seq": rng.choice([0, -3, 50, 319])},
            {"before_key": (row[4], row[0], "")},
            {"after_key": (row[4], row[0], "")},
            {"allowed_namespaces": ("default",), "before_key": (row[4], row[0], "")},
        ])
        specs.append(dataclasses.replace(spec, **variant))
    return specs


@pytest.fixture(scope="module")
def world():
    rows = _events()
    conn = sqlite3.connect(":memory:")
    conn.executescript(ROW_MODEL_SCHEMA + MAIN_SCHEMA)
    register_functions(conn)
    marks = ",".join("?" * len(ROW_COLUMNS))
    conn.executemany(f"INSERT INTO events({', '.join(ROW_COLUMNS)}) VALUES ({marks})", rows)
    conn.executemany("INSERT INTO events_fts(rowid, message) VALUES (?, ?)", ((r[0], r[18]) for r in rows))
    conn.executemany("INSERT INTO origins(id, host, source_key) VALUES (?, ?, ?)",
                     ((oid, host, key) for oid, (host, key) in ORIGINS.items()))
    conn.executemany("INSERT INTO node_addresses(host, ip) VALUES (?, ?)", ADDRESSES.items())
    return conn, rows, _specs(rows)


def _origin_ids(conn: sqlite3.Connection, spec: FilterSpec) -> list[int] | None:
    if spec.host is None:
        return None
    sql, params = host_origins_sql(spec.host)
    return sorted(oid for (oid,) in conn.execute(sql, params))


def _sql_selects(conn: sqlite3.Connection, spec: FilterSpec, origin_ids: list[int] | None) -> list[int]:
    where, params = compile_where(spec, origin_ids=origin_ids)
    # compile_where renders received_at by replacing "time" in its time expression, strftime's
    # name included, so SQLite refused every `--where received_at=...`; what it meant is compared.
    where = where.replace("strfreceived_at(", "strftime(")
    return [seq for (seq,) in conn.execute(f"SELECT seq FROM events WHERE {where or 1} ORDER BY seq", params)]


def test_row_predicate_selects_what_the_sql_selected(world):
    conn, rows, specs = world
    assert len(specs) > 800
    selected_somewhere = 0
    for spec in specs:
        origin_ids = _origin_ids(conn, spec)
        expected = _sql_selects(conn, spec, origin_ids)
        predicate = row_predicate(spec, origin_ids)
        assert [row[0] for row in rows if predicate(row)] == expected, spec
        selected_somewhere += 0 < len(expected) < len(rows)
    # The set is not trivial: most filters select some rows and not others.
    assert selected_somewhere > len(specs) // 2


def test_the_host_filter_through_the_main_files_tables_agrees(world):
    conn, rows, _ = world
    for host in FLAGS["host"]:
        spec = build_filter_spec({"host": host})
        where, params = compile_where(spec)      # resolved by SQL on origins and node_addresses
        expected = [seq for (seq,) in conn.execute(f"SELECT seq FROM events WHERE {where or 1} ORDER BY seq", params)]
        predicate = row_predicate(spec, _origin_ids(conn, spec))
        assert [row[0] for row in rows if predicate(row)] == expected, host


def test_no_origin_ids_means_no_host_filter_and_an_empty_list_means_none_match(world):
    _, rows, _ = world
    spec = build_filter_spec({"host": "web-1"})
    assert sum(map(row_predicate(spec, None), rows)) == len(rows)
    assert sum(map(row_predicate(spec, []), rows)) == 0


def test_a_typed_pattern_never_runs_on_rows_outside_the_callers_namespaces():
    """A row of another namespace whose every other column would raise if anything read it."""

    class Untouchable:
        def __getattribute__(self, name):
            raise AssertionError(f"a pattern ran on another namespace's row ({name})")

    row = [Untouchable()] * len(ROW_COLUMNS)
    row[ROW_COLUMNS.index("namespace")] = "secret"
    raw = {"message": '"abc 123" user@x', "message_regex": "(a+)+$", "where": "message=%x%;time=2023%",
           "user": "a*", "request_id": "r*", "app": "*", "since": "2023-01-01", "min_level": "debug"}
    spec = dataclasses.replace(build_filter_spec(raw, now=NOW_US), allowed_namespaces=("payments",))
    assert row_predicate(spec, [1, 2])(row) is False
    assert row_predicate(dataclasses.replace(spec, allowed_namespaces=()), None)(row) is False


def test_needs_ids_only_for_a_where_on_id():
    assert needs_ids(build_filter_spec({"where": "id=abc%"}))
    assert not needs_ids(build_filter_spec({"where": "app=abc%", "message": "id"}))


def test_time_text_is_what_sqlite_renders():
    conn = sqlite3.connect(":memory:")
    rng = random.Random(33)
    edges = [-210_866_760_000_000_000, -210_866_760_000_000_001, -210_866_760_000_999_999, 253_402_300_799_999_999,
             253_402_300_800_000_000, -62_135_596_800_000_000, -62_135_596_800_000_001, -1, -999_999, -1_000_000,
             -1_000_001, -100_000, -99_999, 0, 951_782_400_000_000, 4_107_542_400_000_000]
    times = edges + [rng.randrange(-210_900_000_000_000_000, 253_500_000_000_000_000) for _ in range(3000)]
    times += [rng.randrange(-4_000_000_000_000_000, 4_000_000_000_000_000) for _ in range(3000)]
    sql = ("SELECT (strftime('%Y-%m-%d %H:%M:%S', ? / 1000000, 'unixepoch') || '.' || "
           "substr('000000' || (? % 1000000), -6))")
    for time in times:
        assert sqlite_time_text(time) == conn.execute(sql, (time, time)).fetchone()[0], time


# -- blocks -----------------------------------------------------------------------------------------

def _may_match(spec, header: BlockHeader, hosts, block: EncodedBlock, bloom_of=None) -> bool:
    """What a search asks of a block before opening it (sqlite_block_scan): its request-id and
    user filters first, then its header, summary and word filter."""
    return (keys_may_match(spec, block.request_bloom, block.user_bloom)
            and block_may_match(spec, header, hosts, bloom_of or (lambda: block.bloom), keys_checked=True))


def _blocks(rows: list[list], size: int = 16) -> list[tuple[BlockHeader, EncodedBlock, set[int]]]:
    """The rows as blocks: one stream (namespace, host) each, up to `size` events, seq order."""
    namespace, host = ROW_COLUMNS.index("namespace"), ROW_COLUMNS.index("host")
    streams: dict[tuple[str, str], list[list]] = {}
    for row in rows:
        if row[namespace] is not None:
            streams.setdefault((row[namespace], row[host]), []).append(row)
    blocks = []
    for stream in streams.values():
        for start in range(0, len(stream), size):
            chunk = stream[start:start + size]
            block = encode_block(chunk, lambda seq: bytes(32))
            header = BlockHeader(len(blocks) + 1, block.min_seq, block.max_seq, block.min_time, block.max_time,
                                 block.count, block.min_level, block.namespace, block.host, block.summary)
            blocks.append((header, block, {row[0] for row in chunk}))
    return blocks


def test_block_may_match_never_skips_a_block_holding_a_match(world):
    conn, rows, specs = world
    blocks = _blocks(rows)
    skipped = checked = 0
    for spec in specs:
        origin_ids = _origin_ids(conn, spec)
        hosts = None if origin_ids is None else {ORIGINS[o][0] for o in origin_ids}
        matched = set(_sql_selects(conn, spec, origin_ids))
        for header, block, seqs in blocks:
            may = _may_match(spec, header, hosts, block)
            assert may or not (seqs & matched), (spec, header)
            skipped += not may
            checked += not (seqs & matched)
    # Skipping does happen: a good share of the blocks without a match are never opened.
    assert skipped > checked // 3


def _block() -> tuple[BlockHeader, EncodedBlock]:
    """One block of 10 events of the stream (payments, web-1): info and debug, one request id,
    one user, app nginx, messages `GET /index <i> ok`."""
    rows = []
    for i in range(10):
        row = {"seq": 100 + i, "origin": 1, "pos": i, "id": None, "time": BASE_US + i, "received_at": BASE_US + i,
               "host": "web-1", "host_ip": None, "collector": None, "namespace": "payments", "source": "journal",
               "log_type": "application", "app": "nginx", "pid": None, "level": 6 + i % 2, "request_id": "req-1",
               "user": "alice", "action": None, "message": f"GET /index {i} ok", "fields": None, "tier": "general",
               "truncated": None, "hash": bytes(32)}
        rows.append([row[name] for name in ROW_COLUMNS])
    block = encode_block(rows, lambda seq: bytes(32))
    header = BlockHeader(1, block.min_seq, block.max_seq, block.min_time, block.max_time, block.count,
                         block.min_level, block.namespace, block.host, block.summary)
    return header, block


@pytest.mark.parametrize(("raw", "extra", "hosts", "expected"), [
    ({}, {}, None, True),
    ({}, {"allowed_namespaces": ("default",)}, None, False),
    ({}, {"allowed_namespaces": ()}, None, False),
    ({}, {"allowed_namespaces": ("payments",)}, None, True),
    ({"namespace": "default,web"}, {}, None, False),
    ({"namespace": "pay*"}, {}, None, True),
    ({"host": "db-1"}, {}, {"db-1"}, False),
    ({"host": "web-*"}, {}, {"web-1"}, True),
    ({"host": "nothing"}, {}, set(), False),
    ({"min_level": "warning"}, {}, None, False),
    ({"min_level": "info"}, {}, None, True),
    ({"level": "error,emerg"}, {}, None, False),
    ({"level": "error,debug"}, {}, None, True),
    ({"since": "2023-11-15"}, {}, None, False),
    ({"until": "2023-11-14"}, {}, None, False),
    ({"date": "2023-11-14 22"}, {}, None, True),
    ({"date": "2023-11-13"}, {}, None, False),
    ({}, {"after_seq": 109}, None, False),
    ({}, {"after_seq": 108}, None, True),
    ({}, {"before_key": (BASE_US, 100, "")}, None, False),
    ({}, {"before_key": (BASE_US, 101, "")}, None, True),
    ({}, {"after_key": (BASE_US + 9, 109, "")}, None, False),
    ({}, {"after_key": (BASE_US + 8, 109, "")}, None, True),
    ({"request_id": "req-2"}, {}, None, False),
    ({"request_id": "req-1"}, {}, None, True),
    ({"request_id": "req-2*"}, {}, None, True),     # a wildcard: the bloom cannot tell
    ({"user": "mallory"}, {}, None, False),
    ({"user": "mallory,alice"}, {}, None, True),
    ({"app": "api"}, {}, None, False),
    ({"app": "ng*"}, {}, None, True),
    ({"log_type": "audit"}, {}, None, False),
    ({"action": "login"}, {}, None, False),           # every action is NULL
    ({"message": "missing"}, {}, None, False),
    ({"message": "get INDEX"}, {}, None, True),
    ({"message": '"index ok"'}, {}, None, True),      # both words held (not adjacent: only rows tell)
    ({"message": "ind* missing*"}, {}, None, True),   # prefixes: the bloom cannot tell
    ({"message": "get-missing*"}, {}, None, True),
    ({"message": "missing-get*"}, {}, None, False),
    ({"message": "_"}, {}, None, False),              # FTS5 matched nothing for a keyword of no words
    ({"where": "app=NG%"}, {}, None, True),
    ({"where": "app=api%"}, {}, None, False),
    ({"where": "tier=audit"}, {}, None, False),
    ({"where": "host=web_1"}, {}, None, False),
    ({"where": "namespace=PAY%"}, {}, None, True),
    ({"where": "level=err%"}, {}, None, False),
    ({"where": "level=deb%"}, {}, None, True),
])
def test_block_may_match_on_one_block(raw, extra, hosts, expected):
    header, block = _block()
    spec = dataclasses.replace(build_filter_spec(raw, now=NOW_US), **extra)
    assert _may_match(spec, header, hosts, block) is expected


def test_the_bloom_is_read_only_when_the_filter_looks_words_up():
    header, block = _block()
    reads = []

    def bloom_of():
        reads.append(1)
        return block.bloom

    for raw in ({"app": "nginx", "since": "2023-11-01"}, {"message": "get* -"}, {"request_id": "req-*"},
                {"request_id": "req-1"}, {"user": "alice"}):
        assert _may_match(build_filter_spec(raw, now=NOW_US), header, None, block, bloom_of)
    assert reads == []
    assert _may_match(build_filter_spec({"message": "index"}), header, None, block, bloom_of)
    assert _may_match(build_filter_spec({"message": "nothere"}), header, None, block, lambda: None)  # block gone
    assert reads == [1]


def test_a_block_written_before_block_keys_is_looked_up_in_its_word_filter():
    """Such a block's word filter held its request ids and users (and the reader asks it when
    the file has no block_keys)."""
    header, _ = _block()
    old = blocks.build_bloom({blocks.request_key("req-1"), blocks.user_key("alice"), "index"})
    for raw, expected in (({"request_id": "req-1"}, True), ({"request_id": "req-2"}, False),
                          ({"user": "alice"}, True), ({"user": "bob"}, False)):
        assert block_may_match(build_filter_spec(raw, now=NOW_US), header, None, lambda: old) is expected

