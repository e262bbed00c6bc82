"""The agent's hot path in C (agent/_parse_native.c) against the Python reference (agent/parse.py,
the file source, the batcher): the same Parsed for every line — random lines built from every
shape the `auto` parser knows and from hostile bytes — the same records out of a real FileSource
reading invalid UTF-8, NUL bytes, 10 MB lines, CR/LF mixes and multiline events, and the same
serialized Chunk out of the batcher.

The import is not guarded: `make test` builds the extension, and a missing build must fail here
rather than pass on the fallback.
"""

from __future__ import annotations

import json
import random
import types

import pytest

from fleetlog.agent import _parse_native  # noqa: F401 — the build must exist
from fleetlog.agent.batcher import build_chunk, chunk_payload
from fleetlog.agent.parse import native_parse_text, parse_auto, parse_text, python_parse_auto
from fleetlog.agent.sources.base import Record, SourceBatch
from fleetlog.agent.sources.file import FileSource
from fleetlog.common.levels import _ALIASES
from tests.unit.file_source_helpers import Driver, file_config

WHITESPACE = [" ", "  ", "\t", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\n", ""]
LEVEL_WORDS = list(_ALIASES) + ["infoo", "warnings", "xx", "abcdefghijklmn", "abcdefghijklm", "8", "9", "10"]
KEYS = ["request_id", "req", "req_id", "rid", "requestId", "user", "user_name", "username", "user_id", "action",
        "event", "level", "severity", "lvl", "time", "timestamp", "ts", "@timestamp", "msg", "message", "host",
        "hostname", "seq", "a.b", "x-y", "@k", "_u", "k9", "9k", "é"]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _iso(rng: random.Random) -> str:
    year = rng.choice(["2025", "0000", "0001", "9999", "1970", "2024", "2100", _digits(rng, 4)])
    month = rng.choice(["01", "02", "12", "00", "13", _digits(rng, 2)])
    day = rng.choice(["01", "28", "29", "30", "31", "00", "32", _digits(rng, 2)])
    clock = ":".join(rng.choice(["00", "23", "24", "59", "60", _digits(rng, 2)]) for _ in range(3))
    text = f"{year}{rng.choice('-/')}{month}{rng.choice('-/')}{day}{rng.choice('T ')}{clock}"
    if rng.random() < 0.6:
        text += rng.choice(".,") + _digits(rng, rng.randint(0, 12))
    if rng.random() < 0.6:
        text += rng.choice(["Z", "z", "+02:00", "-05:30", "+0100", "+01", "+01:", "+1:00", "-23:59", "+99:99",
                            "+01:0", "+0"])
    return text


def _epoch(rng: random.Random) -> str:
    text = _digits(rng, rng.choice([9, 10, 11, 12, 13, 14]))
    if rng.random() < 0.5:
        text += "." + _digits(rng, rng.randint(0, 11))
    return text


def _syslog(rng: random.Random) -> str:
    return f"{rng.choice(['Dec', 'Jan', 'Feb', 'Foo', 'DEC', 'dec'])}{rng.choice([' ', '  ', '   '])}" \
           f"{rng.randint(0, 40)} {_digits(rng, 2)}:{_digits(rng, 2)}:{_digits(rng, 2)}"


def _value(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        inner = "".join(rng.choice(['a', ' ', '\\', '"', '\\"', '\\\\', ',', ';', '=', '\n', 'é'])
                        for _ in range(rng.randint(0, 8)))
        return '"' + inner + rng.choice(['"', '', '\\"', '\\'])
    if kind < 0.4:
        return rng.choice(["", ",", ";", " "])
    if kind < 0.5:
        return rng.choice(["inf", "nan", "1e400", "1764685845", "2025-12-02T14:30:45Z", "Dec  2 14:30:45", "-1"])
    return "".join(rng.choice("abcXYZ019._-@:/=\"'") for _ in range(rng.randint(1, 10)))


def _pairs(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 6)):
        before = rng.choice(["", "", "x", "1", ".", "-", "@", "_", "(", "[", '"'])
        parts.append(f"{before}{rng.choice(KEYS)}={_value(rng)}")
        parts.append(rng.choice([" ", ", ", ";", "", "\t", " word "]))
    return "".join(parts)


def _junk(rng: random.Random) -> str:
    alphabet = [chr(c) for c in range(0x80)] + ["é", "\ufffd", "\u2028", "😀", "\x85", "\xa0"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))


def random_line(rng: random.Random) -> str:
    head = rng.choice([_iso, _iso, _epoch, _syslog, lambda r: "[" + _iso(r) + rng.choice(["]", "", ")"]),
                       lambda r: "", lambda r: "{", lambda r: _junk(r)[:3]])(rng)
    level = rng.choice(LEVEL_WORDS)
    level = "".join(c.upper() if rng.random() < 0.3 else c for c in level)
    level = rng.choice(["", "[", ""]) + level + rng.choice(["", "]", ":", "]:", ":]", ""])
    parts = [head, rng.choice(WHITESPACE), level if rng.random() < 0.8 else "", rng.choice(WHITESPACE),
             rng.choice(["message text", "", "a=b", "disk 91%", _junk(rng)]), rng.choice(WHITESPACE), _pairs(rng)]
    if rng.random() < 0.1:
        parts.append(_junk(rng))
    return "".join(parts)


def _same(native, reference) -> bool:
    """Equal Parsed values, and the same order of fields (they are JSON-encoded in that order)."""
    return native == reference and list((native.fields or {}).items()) == list((reference.fields or {}).items())


@pytest.mark.parametrize("seed", range(8))
def test_native_and_python_give_the_same_parsed_for_random_lines(seed):
    rng = random.Random(seed)
    handled = 0
    for _ in range(5000):
        line = random_line(rng)
        native = native_parse_text(line)
        if native is not None:
            handled += 1
            assert _same(native, parse_text(line)), line
        assert _same(parse_auto(line), python_parse_auto(line)), line
    assert handled > 1500   # the C step really carries the common shapes (the rest is hostile on purpose)


@pytest.mark.parametrize("line", [
    "", " ", "\x00", "\x00\x00INFO", "2025-12-02T14:30:45Z\x00INFO x", "INFO\x00 x=1", "x=\x00",
    "2025-12-02T14:30:45.1234567890Z INFO frac", "2025-02-29T00:00:00Z no leap", "2024-02-29T00:00:00Z leap",
    "0000-01-01T00:00:00Z year zero", "9999-12-31T23:59:59.999999-23:59 last", "2025-12-02T14:30:45+01:0 short tz",
    "[2025-12-02T14:30:45Z]INFO tight", "[2025-12-02T14:30:45Z x", "1764685845 INFO", "1764685845.1234567891 x",
    "17646858451 eleven", "1764685845250.5 ms", "1764685845\tINFO tab", "1764685845", "INFO", "[5] msg",
    "[INFO] x", "[INFO x", "info:", "WARN:]x", "ABCDEFGHIJKLM x", "ABCDEFGHIJKLMN x", "err\x1cx",
    'a="unterminated', 'a="x\\"', 'a="x\\\ny"', 'a="x\ny" b=1', 'a="\\\\\\"" b', "a=1 a=2 req=1 rid=2",
    "time=inf", "x ts=1764685845 INFO", "x level= warn lvl=crit", "x level=' warn '", "k=v,w=x;y=z",
    "é INFO non-ascii", "2025-12-02T14:30:45Z INFO caf\u00e9 user=é", "{\"msg\": \"json\"}", "{not json",
    "Dec  2 14:30:45 host sshd[1]: x", "Foo  2 14:30:45 not a month", "x" * 100_000 + " user=a",
    "2025-12-02T14:30:45Z INFO " + "k=v " * 5000,
])
def test_native_and_python_agree_on_hostile_lines(line):
    native = native_parse_text(line)
    if native is not None:
        assert _same(native, parse_text(line))
    assert _same(parse_auto(line), python_parse_auto(line))


def _no_read_time(records):
    return [(r.position, r.parsed, list((r.parsed.fields or {}).items()), r.app, r.pid, r.flags) for r in records]


@pytest.mark.parametrize("seed", range(4))
def test_native_and_python_split_an_ascii_block_into_the_same_records(tmp_path, seed):
    """FileSource._records of an ASCII block: blank and whitespace-only lines skipped, CR dropped, lines cut at
    max_line_bytes and flagged, a partial last line left out."""
    rng = random.Random(seed)
    native = FileSource(file_config([str(tmp_path / "x.log")], max_line_bytes=64, app="web"), tmp_path / "n")
    python = FileSource(file_config([str(tmp_path / "x.log")], max_line_bytes=64, app="web"), tmp_path / "p")
    python.native_records, python.parse = None, python_parse_auto
    assert native.native_records is not None
    for round_ in range(200):
        lines = []
        # Now and then more lines than the C code scans per release of the GIL (1,024).
        for _ in range(rng.randint(0, 40) if round_ % 50 else rng.randint(1024, 3000)):
            line = random_line(rng).encode("ascii", "replace").replace(b"\n", b"")
            lines.append(line + rng.choice([b"", b"\r", b" ", b"\r\r", b"x" * rng.randint(0, 100)]))
            lines.append(rng.choice([b"", b"", b" ", b"\t\x0b", b"\r", b"\x1c"]))
        block = b"\n".join(lines) + rng.choice([b"\n", b"\npartial", b""])
        start = rng.randint(0, 10**12)
        assert _no_read_time(native._records(block, start)) == _no_read_time(_python_records(python, block, start))


def _python_records(source, block, start):
    """What FileSource does with a block of whole lines in Python (no multiline joiner)."""
    if block.isascii():
        return source._records(block, start)
    lines = []
    source._split(types.SimpleNamespace(joiner=None), block, start, 0.0, lines)
    return source._parse(lines)


@pytest.mark.parametrize("seed", range(4))
def test_native_and_python_split_any_bytes_into_the_same_records(tmp_path, seed):
    """A block that is not ASCII: invalid UTF-8 kept with replacement characters and
    fields.invalid_utf8, Unicode whitespace-only lines skipped, cuts at max_line_bytes in bytes
    (even inside a character), CR dropped before decoding."""
    rng = random.Random(100 + seed)
    native = FileSource(file_config([str(tmp_path / "x.log")], max_line_bytes=48), tmp_path / "n")
    python = FileSource(file_config([str(tmp_path / "x.log")], max_line_bytes=48), tmp_path / "p")
    python.native_records, python.parse = None, python_parse_auto
    pieces = [b"\xc3\xa9", b"\xe2\x9c\x93", b"\xf0\x9f\x98\x80", b"\xff", b"\xc3", b"\xe2\x9c", b"\x80",
              b"\xed\xa0\x80", b"\xc2\x85", b"\xc2\xa0", b"\xe2\x80\xa8", b"\x00", b"\r", b" ", b"\t", b"="]
    for _ in range(200):
        lines = []
        for _ in range(rng.randint(1, 30)):
            line = random_line(rng).encode("utf-8", "replace").replace(b"\n", b"")
            for _ in range(rng.randint(0, 3)):
                at = rng.randint(0, len(line))
                line = line[:at] + rng.choice(pieces) + line[at:]
            lines.append(line + rng.choice([b"", b"\r", b"x" * rng.randint(0, 60)]))
            lines.append(rng.choice([b"", b" ", b"\xc2\xa0", b"\xe2\x80\xa8 ", b"\xc2\x85\r", b"\x1c"]))
        block = b"\n".join(lines) + b"\n"
        if block.isascii():
            block += b"\xff\n"
        start = rng.randint(0, 10**12)
        assert _no_read_time(native._records(block, start)) == _no_read_time(_python_records(python, block, start))


def _read_all(path, state, parse, **config):
    driver = Driver(file_config([str(path)], **config), state)
    driver.source.parse = parse
    if parse is python_parse_auto:
        driver.source.native_records = None
    with driver:
        driver.wait(lambda c: c.has("END OF FILE"), 60, "the last line")
    return _no_read_time(sorted(driver.collected.records(), key=lambda r: r.position))


@pytest.mark.parametrize("multiline", [None, {"start_pattern": r"^\d{4}-", "max_wait": 0.1}])
def test_a_file_of_hostile_bytes_gives_the_same_records_through_either_parse(tmp_path, multiline):
    rng = random.Random(7)
    chunks = []
    for i in range(3000):
        kind = rng.random()
        if kind < 0.6:
            line = random_line(rng).replace("\n", " ").encode("utf-8", "surrogatepass")
        elif kind < 0.7:
            line = bytes(rng.randrange(256) for _ in range(rng.randint(0, 60))).replace(b"\n", b"")
        elif kind < 0.8:
            line = b"2025-12-02T14:30:45Z ERROR bad \xff\xfe utf8 user=\xc3 req=r1"
        elif kind < 0.9:
            line = b"\x00" * rng.randint(1, 5) + b" INFO nul " + b"\x00 k=\x00v"
        else:
            line = f"    at frame {i} (File.java:{i})".encode()
        chunks.append(line + rng.choice([b"\n", b"\r\n", b"\r\r\n", b"\n\r\n", b"\n\n"]))
        if i == 1500:
            chunks.append(b"2025-12-02T14:30:45Z INFO huge " + b"x=y " * (10 * 1024 * 1024 // 4) + b"\n")
    chunks.append(b"2025-12-02T14:30:45Z INFO END OF FILE\n")
    path = tmp_path / "hostile.log"
    path.write_bytes(b"".join(chunks))
    config = {"max_line_bytes": 16 * 1024 * 1024} if multiline is None else {"multiline": multiline}
    native = _read_all(path, tmp_path / "native", parse_auto, **config)
    python = _read_all(path, tmp_path / "python", python_parse_auto, **config)
    assert len(native) > 1000 if multiline is None else len(native) > 50
    assert native == python


def _json_line(rng: random.Random) -> str:
    values = ["x", "é\u2028", 'q"\\\n\t\x00\x1f\x7f', 12, -1.5, 1e300, True, None, [1, "a"], {"n": {"m": "é"}}, ""]
    data = {rng.choice(KEYS + ["k", "n", "é"]): rng.choice(values) for _ in range(rng.randint(0, 6))}
    return json.dumps(data, ensure_ascii=rng.random() < 0.5)


@pytest.mark.parametrize("seed", range(6))
def test_native_and_python_build_the_same_chunk(seed):
    """batcher.build_chunk: the same serialized Chunk from either way, whatever the records hold
    (no level, claimed hosts, truncated flags, fields with escapes, non-ASCII and non-string values)
    and whatever the source's min_level drops."""
    rng = random.Random(seed)
    for _ in range(100):
        records = []
        for position in range(rng.randint(0, 60)):
            line = _json_line(rng) if rng.random() < 0.3 else random_line(rng)
            records.append(Record(position * 100, parse_auto(line), rng.choice(["", "web", "é"]),
                                  rng.choice([0, 1, 65535]), rng.choice([0, 1]), rng.randint(0, 2**62)))
        batch = SourceBatch("file:/x.log", "key", "application", records, None, min_level=rng.randint(0, 7))
        native, native_dropped = build_chunk(batch, "default")
        python, python_dropped = build_chunk(batch, "default", native=False)
        assert native_dropped == python_dropped
        assert native.SerializeToString() == python.SerializeToString()
        # The batcher's bytes written in C from the columns: protobuf's own serialization.
        assert chunk_payload(batch, "default") == (python.SerializeToString(), len(python.position), python_dropped)


def test_a_relayed_chunk_keeps_its_sender_and_namespace():
    """A receiver's batch (its relayed_host, its listener's namespace) is serialized with both,
    by the C writer as protobuf does (it lost them once, when the two were merged)."""
    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
    records = [Record(position, parse_auto(f"line {position}"), "", 0, 0, 1) for position in range(3)]
    batch = SourceBatch("syslog:udp-in", "key", "system", records, None, namespace="network",
                        relayed_host="10.9.9.9")
    data, count, dropped = chunk_payload(batch, "default")
    chunk = pb.Chunk.FromString(data)
    assert (chunk.relayed_host, chunk.namespace, count, dropped) == ("10.9.9.9", "network", 3, 0)
    assert data == build_chunk(batch, "default", native=False)[0].SerializeToString()
    own = SourceBatch("file:/x.log", "key", "application", records, None, namespace="network")
    assert pb.Chunk.FromString(chunk_payload(own, "default")[0]).namespace == "network"


def test_chunk_bytes_in_c_are_protobufs_for_edge_values():
    """Empty columns and header strings (left out), empty strings in repeated fields (kept), the
    integers' extremes, non-ASCII; a value the message refuses goes to build_chunk's error."""
    from fleetlog.agent._parse_native import chunk_bytes
    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

    cases = [
        ("", "", "", "", [], [], b"", [], [], [], [], [], [], [], b"", None),
        ("file:/é", "k", "ns", "application", [0, 2**64 - 1, 300], [-(2**63), 2**63 - 1, -1], b"\x00\x07\x03",
         ["", "ü✓", "x" * 200], ["", "r", ""], ["", "", "u"], ["a", "", ""], ["", "", ""], [0, 2**32 - 1, 128],
         ['{"a":1}', "", ""], b"\x01\x00\x01", ["", "h", ""]),
    ]
    for case in cases:
        (source, key, namespace, log_type, positions, times, levels, messages, request_ids, users, actions, apps,
         pids, fields, flags, claims) = case
        message = pb.Chunk(source=source, source_key=key, namespace=namespace, log_type=log_type, position=positions,
                           time_us=times, level=levels, message=messages, request_id=request_ids, user=users,
                           action=actions, app=apps, pid=pids, fields_json=fields, flags=flags,
                           claimed_host=claims or [])
        assert chunk_bytes(*case) == message.SerializeToString()
    base = list(cases[1])
    for at, bad in ((4, [-1, 0, 0]), (12, [2**32, 0, 0]), (5, [2**63, 0, 0]), (7, ["\ud800", "", ""]),
                    (4, ["1", 0, 0])):
        with pytest.raises((OverflowError, ValueError, TypeError, UnicodeError)):
            chunk_bytes(*base[:at], bad, *base[at + 1:])


def test_records_of_plain_values_are_left_out_of_the_cycle_collector():
    """A Record and its Parsed made in C are untracked when they hold no tracked container (so a
    block's thousands of them cost the cycle collector nothing); one holding one stays tracked."""
    import gc

    from fleetlog.agent._parse_native import ascii_records

    block = (b"2025-12-02T14:30:45.000001Z INFO req=r1 user=alice seq=1\n"
             b"plain line\n"
             b'{"level": "error", "msg": "x", "nested": {"a": [1]}}\n')
    records = ascii_records(block, 0, 65536, "", 7, Record, python_parse_auto)
    assert [r.parsed.message for r in records[:2]] == ["req=r1 user=alice seq=1", "plain line"]
    assert records[0].parsed.fields == {"seq": "1"}
    for record in records[:2]:
        assert not gc.is_tracked(record) and not gc.is_tracked(record.parsed)
    assert gc.is_tracked(records[2].parsed.fields) and gc.is_tracked(records[2])


def test_pair_keys_kept_between_lines_parse_as_python_does():
    """The C parser keeps the strings of short keys between lines (a small cache): many distinct
    keys, keys that share a slot, long keys and the same key again give Python's Parsed."""
    keys = [f"k{i}" for i in range(300)] + ["x" * 31, "x" * 32, "x" * 33, "y" * 200, "user", "req"]
    for round_ in range(3):
        for i, key in enumerate(keys):
            line = f"2025-12-02T14:30:45Z INFO {key}=v{i}{round_} other=1 {keys[-i]}=w msg"
            assert native_parse_text(line) == python_parse_auto(line), line
