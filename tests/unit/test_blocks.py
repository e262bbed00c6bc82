"""The compressed column block (collector/store/blocks.py): every kind of column comes back as it
went in, an altered or cut payload is a BlockError, the bloom never misses what a block holds, and
the C loops (collector/store/_blocks_native.c) give the same bytes as the Python forms.

The import of the extension is not guarded: `make install` builds it, and a missing build must
fail here rather than pass on the fallback.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import unicodedata
from typing import Any

import pytest
import zstandard

from fleetlog.collector.store import ROW_COLUMNS, _blocks_native, blocks
from fleetlog.common.ids import event_ids_of

HOST, SOURCE_KEY = "node-1", "file:/var/log/app.log"
KEYS = {1: (HOST, SOURCE_KEY), 2: ("nœud-ü", "journal:" + "x" * 150), 3: (HOST, "file:/b")}
COL = {name: i for i, name in enumerate(ROW_COLUMNS)}


def link_of(seq: int) -> bytes:
    return hashlib.sha256(seq.to_bytes(8, "little", signed=True)).digest()


def link_before(seq: int) -> bytes:
    return link_of(seq - 1)


def row(seq: int, **values: Any) -> list[Any]:
    base: dict[str, Any] = {
        "seq": seq, "origin": 1, "pos": seq * 100, "id": None, "time": 1_764_686_245_000_000 + seq,
        "received_at": 1_764_686_245_500_000, "host": HOST, "host_ip": "10.0.0.1", "collector": "c1",
        "namespace": "default", "source": "file:/var/log/app.log", "log_type": "application", "app": "web",
        "pid": 42, "level": 6, "request_id": f"r{seq}", "user": "alice", "action": None,
        "message": f"Authentication SUCCESS via LDAP seq={seq}", "fields": None, "tier": "hot",
        "truncated": 0, "hash": link_of(seq)}
    base.update(values)
    return [base[name] for name in ROW_COLUMNS]


@pytest.fixture(params=["native", "python"])
def codec(request, monkeypatch):
    """blocks with the C loops, and with the Python forms they stand for."""
    if request.param == "python":
        monkeypatch.setattr(blocks, "_native", None)
    else:
        assert blocks._native is _blocks_native
    return blocks


def expected(rows: list[list[Any]]) -> list[list[Any]]:
    """What decode_block gives back: the link's first bytes, the whole link at a run's end."""
    seqs = {r[COL["seq"]] for r in rows}
    out = []
    for r in rows:
        r = list(r)
        if r[COL["seq"]] + 1 not in seqs:
            r[COL["hash"]] = link_of(r[COL["seq"]])
        else:
            r[COL["hash"]] = link_of(r[COL["seq"]])[:blocks.LINK_PREFIX]
        out.append(r)
    return out


def round_trip(codec, rows: list[list[Any]]) -> list[list[Any]]:
    encoded = codec.encode_block(rows, link_before)
    return codec.decode_block(encoded.data).rows


COLUMN_CASES = {
    "constant everywhere": [row(s, pos=500, time=7, received_at=7, request_id="r", message="m") for s in range(1, 6)],
    "None everywhere": [row(s, app=None, pid=None, request_id=None, user=None, host_ip=None) for s in range(1, 6)],
    "empty and None apart": [row(s, app=[None, "", "x", None, ""][s - 1], user=["", "", "", None, ""][s - 1],
                                 action=["", "", "", "", ""][s - 1], fields=[None, "", None, None, None][s - 1])
                             for s in range(1, 6)],
    "None only as text's empty": [row(s, app=[None, "a", "b", None, "c"][s - 1]) for s in range(1, 6)],
    "NUL inside a value": [row(s, message=["a\x00b", "plain", "\x00", "", "x"][s - 1],
                               user=["u\x00", None, "", "v", "w"][s - 1]) for s in range(1, 6)],
    "lone surrogates": [row(s, message=["bad \udcff byte", "\ud800", "ok", "é\udfff", "😀"][s - 1],
                            request_id=["\udc80", "r", None, "\ud83d", ""][s - 1], fields="{\"k\": \"\udcfe\"}")
                        for s in range(1, 6)],
    "big and negative numbers": [row(s, pos=[2**63 - 1, -(2**63), 0, -5, 2**62][s - 1],
                                     time=[-(2**63), 2**63 - 1, -1, 10**18, -10**18][s - 1],
                                     pid=[2**63 - 1, -(2**63), None, 3, -3][s - 1],
                                     level=[0, 7, 3, -1, 255][s - 1]) for s in range(1, 6)],
    "int columns with None": [row(s, pid=[None, 1, None, 2, 3][s - 1], truncated=[0, 1, 0, 1, 1][s - 1])
                              for s in range(1, 6)],
    "several runs": [row(s) for s in (3, 4, 5, 9, 11, 12, 20)],
    "one event": [row(77, id="kept-because-not-derived")],
    "ids kept and derived": [row(s, id=None if s % 2 else f"old-id-{s}", origin=1 + s % 3) for s in range(1, 9)],
    "non-ASCII text everywhere": [row(s, host="hôte", namespace="équipe", app="приложение", action="登录",
                                      message=f"Échec de CONNEXION à Zürich n°{s} — ﬁn", user="Zoë")
                                  for s in range(1, 6)],
}


@pytest.mark.parametrize("case", COLUMN_CASES)
def test_every_kind_of_column_comes_back_as_it_went_in(codec, case):
    rows = COLUMN_CASES[case]
    decoded = codec.decode_block(codec.encode_block(rows, link_before).data)
    assert decoded.rows == expected(rows)
    assert [type(v) for r in decoded.rows for v in r] == [type(v) for r in expected(rows) for v in r]


def test_runs_carry_the_whole_links_at_both_ends(codec):
    rows = COLUMN_CASES["several runs"]
    decoded = codec.decode_block(codec.encode_block(rows, link_before).data)
    assert [(r.start, r.end, r.link_before, r.link_end) for r in decoded.runs] == [
        (3, 5, link_of(2), link_of(5)), (9, 9, link_of(8), link_of(9)), (11, 12, link_of(10), link_of(12)),
        (20, 20, link_of(19), link_of(20))]


def test_the_skip_columns_and_the_dedup_spans(codec):
    rows = [row(s, origin=1 + s % 2, pos=1000 - s, level=[6, 3, 7, 6][s % 4], app=["a", "b", None][s % 3])
            for s in range(1, 41)]
    encoded = codec.encode_block(rows, link_before)
    assert (encoded.min_seq, encoded.max_seq, encoded.count, encoded.min_level) == (1, 40, 40, 3)
    assert (encoded.min_time, encoded.max_time) == (1_764_686_245_000_001, 1_764_686_245_000_040)
    assert (encoded.namespace, encoded.host) == ("default", HOST)
    assert encoded.origins == {1: (960, 998), 2: (961, 999)}
    assert json.loads(encoded.summary)["app"] == [None, "a", "b"]


def test_many_origins_give_their_spans(codec):
    rows = [row(s, origin=s % 20, pos=s) for s in range(1, 201)]
    encoded = codec.encode_block(rows, link_before)
    assert encoded.origins == {o: (o or 20, 180 + (o or 20)) for o in range(20)}


def mixed_rows(seed: int, count: int) -> list[list[Any]]:
    rng = random.Random(seed)
    words = ["Connexion", "ÉCHEC", "refusée", "Zürich", "Straße", "ﬁn", "İstanbul", "Ошибка", "接続", "user",
             "LDAP", "req_id", "a-b", "x1y2", "😀", "na\u0308ive", "\udcff", "Ω", "K",
             # lowercasing looks through ' . : ^ ` around a capital sigma; marks after a space; NFKD to ASCII
             "ΟΔΟΣ", "ΑΣ'Β", "Σ.", "ΑΣ:b", "x^Σ`y", "\u0301x", "Ｆｕｌｌ", "½", "①", "ǅ", "ﬀ-ﬁ", "Ⅻ", "'", "."]
    out = []
    seq = 0
    for _ in range(count):
        seq += rng.choice((1, 1, 1, 2, 7))
        message = "".join(rng.choice(words) + str(rng.randint(0, 99)) * rng.randint(0, 1)
                          + rng.choice((" ", " ", "", "'", ".", ":", "\t", "_", "/"))
                          for _ in range(rng.randint(0, 8)))
        out.append(row(seq, origin=rng.randint(1, 3), pos=seq * 3, message=message,
                       request_id=rng.choice([None, "", f"req-{rng.randint(0, 50)}", "Réq\udce9"]),
                       user=rng.choice([None, "", "bob", "Zoë", "ROOT"]),
                       app=rng.choice([None, "", "api"]), fields=rng.choice([None, '{"a": 1}']),
                       time=rng.randint(-10**12, 10**12)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_c_and_python_encode_the_same_bytes(monkeypatch, seed):
    rows = mixed_rows(seed, 300)
    native = blocks.encode_block(rows, link_before)
    monkeypatch.setattr(blocks, "_native", None)
    python = blocks.encode_block(rows, link_before)
    assert (native.bloom, native.data) == (python.bloom, python.data)
    assert native == python
    assert blocks.decode_block(native.data).rows == expected(rows)


@pytest.mark.parametrize("values", [
    [5, 7, 6, -3, 0, True, False, 2**63 - 1, -(2**63)],       # whole, and a difference past 64 bits
    [1, 2, 3, 2**62, -(2**62), 2**62],                        # differences that fit
    [1, None, 3],                                             # a None: kept as JSON
    [1, 2**64],                                               # a value past 64 bits: kept as JSON
    [],
])
@pytest.mark.parametrize("delta", [False, True])
def test_c_and_python_pack_an_integer_column_alike(values, delta):
    assert _blocks_native.int_column(values, delta) == blocks._packed_ints(values, delta)


def test_an_integer_column_holding_a_str_is_a_type_error_in_c_and_python():
    for pack in (_blocks_native.int_column, blocks._packed_ints):
        with pytest.raises(TypeError):
            pack([1, "2"], False)


@pytest.mark.parametrize("seed", range(4))
def test_c_and_python_blooms_are_the_same(seed):
    rows = mixed_rows(100 + seed, 1 + seed * 500)
    columns = list(zip(*rows))
    native = _blocks_native.bloom(columns[blocks.MESSAGE], (), (), blocks.tokens, blocks.BLOOM_BITS_PER_ITEM,
                                  blocks.BLOOM_HASHES)
    assert native == blocks.build_bloom(blocks.bloom_items(rows))
    assert len(native) * 8 >= len(blocks.bloom_items(rows)) * blocks.BLOOM_BITS_PER_ITEM
    keys = blocks.key_blooms(columns[blocks.REQUEST_ID], columns[blocks.USER])
    shape = (blocks.KEY_BLOOM_BITS_PER_ITEM, blocks.KEY_BLOOM_HASHES, blocks.KEY_BLOOM_MIN_BITS)
    assert keys == (blocks.build_bloom(blocks.key_items(columns[blocks.REQUEST_ID], blocks.request_key), *shape),
                    blocks.build_bloom(blocks.key_items(columns[blocks.USER], blocks.user_key), *shape))


@pytest.mark.parametrize("native", [True, False])
def test_c_and_python_key_filter_tests_agree(monkeypatch, native):
    values = [f"req-{i}" for i in range(0, 3000, 3)]
    requests, _ = blocks.key_blooms(values, [])
    if not native:
        monkeypatch.setattr(blocks, "_native", None)
    for i in range(3000):
        pairs = [blocks.item_hashes(blocks.request_key(f"req-{i}"))]
        held = blocks.bloom_holds_any(requests, pairs)
        assert held == all(blocks.bloom_may_hold(requests, blocks.request_key(f"req-{i}"), blocks.KEY_BLOOM_HASHES)
                           for _ in pairs)
        if i % 3 == 0:
            assert held
    assert not blocks.bloom_holds_any(b"", [blocks.item_hashes("x")])
    assert not blocks.bloom_holds_any(requests, [])


def test_the_blooms_hold_every_word_request_and_user(codec):
    rows = mixed_rows(7, 400) + [row(1000, message="Échec de CONNEXION à Zürich: ﬁn du Straße-Test",
                                     request_id="REQ-Ünïcode", user="Zoë")]
    block = codec.encode_block(rows, link_before)
    bloom = block.bloom
    hashes = blocks.KEY_BLOOM_HASHES
    for r in rows:
        for word in blocks.tokens(r[blocks.MESSAGE]):
            assert blocks.bloom_may_hold(bloom, word), word
        if r[blocks.REQUEST_ID]:
            assert blocks.bloom_may_hold(block.request_bloom, blocks.request_key(r[blocks.REQUEST_ID]), hashes)
        if r[blocks.USER]:
            assert blocks.bloom_may_hold(block.user_bloom, blocks.user_key(r[blocks.USER]), hashes)
    # What a user types, folded as a search folds it, finds the accented and upper-case text.
    for typed in ("echec", "ECHEC", "connexion", "zurich", "Zürich", "fin", "strasse", "STRASSE", "test"):
        [word] = blocks.tokens(typed) if typed not in ("strasse", "STRASSE") else [blocks.fold("straße")]
        assert blocks.bloom_may_hold(bloom, word), typed


def test_the_bloom_answers_about_one_in_a_hundred_absent_words():
    rows = [row(s, message=f"req=r{s % 9973:05d} user=user{s % 97}@example.com Authentication SUCCESS seq={s:09d}")
            for s in range(1, 8193)]
    bloom = blocks.encode_block(rows, link_before).bloom
    held = blocks.bloom_items(rows)
    probes = [p for p in (f"{s:09d}" for s in range(10_000, 40_000)) if p not in held]
    rate = sum(blocks.bloom_may_hold(bloom, p) for p in probes) / len(probes)
    assert rate < 0.012, rate


def test_the_request_filter_answers_about_one_in_two_thousand_absent_ids():
    rows = [row(s, request_id=f"r{s // 8:08d}", user=f"user{s % 5000}") for s in range(1, 8193)]
    block = blocks.encode_block(rows, link_before)
    probes = [blocks.request_key(f"r{n:08d}") for n in range(2000, 102_000)]
    rate = sum(blocks.bloom_may_hold(block.request_bloom, p, blocks.KEY_BLOOM_HASHES) for p in probes) / len(probes)
    assert rate < 0.0012, rate      # 0.05 % in theory
    # The word filter does not carry them (what it answers for them is its false positives).
    held = [r for r in range(1024) if blocks.bloom_may_hold(block.bloom, blocks.request_key(f"r{r:08d}"))]
    assert len(held) < 30, len(held)


def test_fold_strips_every_combining_mark_as_the_definition_does():
    marks = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.combining(chr(c))]
    text = "".join("a" + m for m in marks) + " ÉCHEC Straße ﬁn 𝔘𝔫𝔦 İ"

    def reference(t: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFKD", t.lower()) if not unicodedata.combining(c)).lower()

    assert blocks.fold(text) == reference(text)
    assert blocks.fold("𝔘\u0301 Ü") == reference("𝔘\u0301 Ü") == "u u"     # beyond the BMP: the slow path
    # A compatibility form that expands to capitals is folded like the word a user types.
    assert blocks.tokens("Acme™ 5㎒") == ["acmetm", "5mhz"]
    assert blocks.tokens("Échec de CONNEXION à Zürich_42 ﬁn") == ["echec", "de", "connexion", "a", "zurich", "42", "fin"]


def test_fill_ids_derives_the_ids_as_the_collector_does(codec):
    rows = [row(s, origin=1 + s % 3, pos=p) for s, p in enumerate([0, 1, -7, 2**63 - 1, -(2**63), 10**30, -10**30, 5, 121, 99, 1000000], 1)]
    rows.append(row(50, id="kept"))
    codec.fill_ids(rows, KEYS)
    assert [r[COL["id"]] for r in rows] == [event_ids_of(*KEYS[r[COL["origin"]]])(r[COL["pos"]]) for r in rows[:-1]] + [
        "kept"]


def test_event_ids_are_the_ids_fill_ids_derives(codec):
    positions = [0, 1, -7, 2**63 - 1, -(2**63), 10**30, 121]
    rows = [row(s, origin=2, pos=p) for s, p in enumerate(positions, 1)]
    codec.fill_ids(rows, KEYS)
    assert codec.event_ids(*KEYS[2], positions) == [r[COL["id"]] for r in rows]


@pytest.mark.parametrize("positions", [
    [0, 1, -7, 2**63 - 1, -(2**63), *range(100, 5100)],   # every one a 64-bit int: hashed without the GIL
    [0, 1, True, 2**64, -(2**70), 7],                       # not all: each as str(pos) gives it
])
def test_event_ids_are_contract_ids(codec, positions):
    host, key = KEYS[2]
    assert codec.event_ids(host, key, positions) == [
        hashlib.blake2b(f"{host}\x00{key}\x00{p}".encode(), digest_size=16).hexdigest() for p in positions]


def test_fill_ids_names_an_unknown_origin(codec):
    with pytest.raises(KeyError):
        codec.fill_ids([row(1, origin=9)], KEYS)


def test_an_empty_block_is_refused(codec):
    with pytest.raises(ValueError):
        codec.encode_block([], link_before)


# -- altered payloads ------------------------------------------------------------------------------

def good_block() -> bytes:
    return blocks.encode_block(mixed_rows(3, 200), link_before).data


def test_every_cut_payload_is_a_block_error(codec):
    data = good_block()
    for end in range(len(data)):
        with pytest.raises(blocks.BlockError):
            codec.decode_block(data[:end])


def test_every_altered_byte_is_a_block_error_or_changes_nothing(codec):
    """The frame's checksum covers the payload: a flipped bit either fails, or fell where zstd
    does not read it (padding) and the same rows come out."""
    data = good_block()
    rows = codec.decode_block(data).rows
    rng = random.Random(5)
    unread = 0
    for at in range(len(data)):
        altered = bytearray(data)
        altered[at] ^= 1 << rng.randrange(8)
        try:
            decoded = codec.decode_block(bytes(altered))
        except blocks.BlockError:
            continue
        assert decoded.rows == rows, at
        unread += 1
    assert unread < len(data) // 1000


def crafted(header: dict[str, Any], body: bytes = b"") -> bytes:
    encoded = json.dumps(header).encode()
    return zstandard.ZstdCompressor().compress(len(encoded).to_bytes(4, "little") + encoded + body)


def valid_header() -> tuple[dict[str, Any], bytes]:
    """The header and sections of a real block, to alter one field at a time."""
    payload = zstandard.ZstdDecompressor().decompress(blocks.encode_block([row(1), row(2)], link_before).data)
    size = int.from_bytes(payload[:4], "little")
    return json.loads(payload[4:4 + size]), payload[4 + size:]


HOSTILE = {
    "huge count": lambda h: h.update(count=10**12),
    "zero count": lambda h: h.update(count=0),
    "negative count": lambda h: h.update(count=-1),
    "huge run": lambda h: h.update(runs=[[1, 10**15, "00", "00"]]),
    "backward run": lambda h: h.update(runs=[[5, 1, "00", "00"]]),
    "runs too many": lambda h: h.update(runs=[[1, 2, "00", "00"], [5, 6, "00", "00"]]),
    "run not hex": lambda h: h.update(runs=[[1, 2, "zz", "00"]]),
    "negative section": lambda h: h.update(sections=[-5, *h["sections"][1:]]),
    "section past the end": lambda h: h.update(sections=[10**9, *h["sections"][1:]]),
    "missing section": lambda h: h.update(sections=h["sections"][:-1]),
    "unknown format": lambda h: h.update(format=1),
    "no columns": lambda h: h.pop("columns"),
    "column not a spec": lambda h: h["columns"].update(pos=5),
    "column of a missing section": lambda h: h["columns"].update(pos={"q": 99}),
    "text column of ints": lambda h: h["columns"].update(message={"q": 0}),
    "int column of text": lambda h: h["columns"].update(pos={"s": 0}),
    "constant of the wrong kind": lambda h: h["columns"].update(pos={"c": "x"}, message={"c": 5}),
    "unknown column kind": lambda h: h["columns"].update(pos={"z": 0}),
    "null index out of range": lambda h: h["columns"].update(app={"s": 0, "n": [10**6]}),
    "header a list": lambda h: (h.clear(), h.update({"x": []})),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_header_is_a_block_error(codec, case):
    header, body = valid_header()
    HOSTILE[case](header)
    with pytest.raises(blocks.BlockError):
        codec.decode_block(crafted(header, body))


@pytest.mark.parametrize("data", [b"", b"\x00" * 10, b"not zstd at all", crafted({}),
                                  zstandard.ZstdCompressor().compress(b"\xff\xff\xff\x7f{}"),
                                  zstandard.ZstdCompressor().compress(b"\x05\x00\x00\x00[[[[["),
                                  zstandard.ZstdCompressor().compress(b"\x00\x10\x00\x00" + b"[" * 4096)])
def test_what_is_not_a_block_is_a_block_error(codec, data):
    with pytest.raises(blocks.BlockError):
        codec.decode_block(data)


def test_a_frame_larger_than_a_block_is_refused_before_it_is_inflated(codec):
    bomb = zstandard.ZstdCompressor().compress(b"\x00" * (blocks._MAX_BLOCK_BYTES + 1))
    with pytest.raises(blocks.BlockError):
        codec.decode_block(bomb)


def test_a_small_key_filter_seldom_answers_for_an_absent_id():
    """A block of one request id: double hashing in a filter of 64 bits gave another id the
    same bits about once in 1,000; KEY_BLOOM_MIN_BITS makes that rare."""
    filters = [blocks.key_blooms([f"req-{n}"], [])[0] for n in range(2000)]
    probes = [[blocks.item_hashes(blocks.request_key(f"other-{n}"))] for n in range(50)]
    false = sum(blocks.bloom_holds_any(f, p) for f in filters for p in probes)
    assert false <= 10, false       # of 100,000 tests


@pytest.mark.parametrize("seed", range(4))
def test_a_few_events_picked_out_of_a_block_are_the_decoded_ones(codec, seed):
    """BlockColumns picks the values of a few events out of the columns' sections (C) instead of
    decoding them: the same values, NULLs and empty strings, surrogates, delta-coded times, run
    ends' whole links and seqs of several runs included, in any order asked."""
    from fleetlog.collector.store.block_columns import BlockColumns
    rng = random.Random(seed)
    rows = [r for r in mixed_rows(200 + seed, 700) if rng.random() < 0.8]     # gaps: several runs
    data = codec.encode_block(rows, link_before).data
    whole = codec.decode_block(data).rows
    for _ in range(30):
        indexes = [rng.randrange(len(whole)) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.5:
            indexes.sort()
        assert BlockColumns(data).rows(indexes) == [whole[i] for i in indexes]
        columns = BlockColumns(data)
        for name in ("seq", "time", "pos", "request_id", "user", "message", "app", "fields"):
            assert columns.values(name, indexes) == [whole[i][ROW_COLUMNS.index(name)] for i in indexes], name
