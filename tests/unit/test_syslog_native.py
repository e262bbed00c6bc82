"""The C path of the syslog receiver (agent/sources/_syslog_native.c) gives what the Python
reference gives (FrameSplitter + parse_syslog + to_record): the same Records, malformed counts,
message lengths and framing state, on every header variant, random mixes of their pieces,
truncated frames, junk and non-UTF-8, fed whole or cut at random places."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from fleetlog.agent.sources.syslog_framing import FrameSplitter
from fleetlog.agent.sources.syslog_native import StreamReader, datagram, native
from fleetlog.agent.sources.syslog_records import frames_to_records


def test_the_c_module_is_built():
    assert native is not None, "agent/sources/_syslog_native.c was not built (setup.py build_ext --inplace)"

NOW = dt.datetime(2026, 12, 3, 18, 0, 0, 250_000, tzinfo=dt.UTC)
NEW_YEAR = dt.datetime(2027, 1, 1, 0, 0, 5, tzinfo=dt.UTC)

FRAMES = [
    b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed",
    b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time",
    b'<165>1 2003-10-11T22:14:15.003Z h evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="App"] msg',
    b'<14>1 2026-01-02T03:04:05+05:30 h a 12 m [a x="1"][b y="\\"q\\]"][a z="2" x="3"]  text  \r\n\0',
    b'<14>1 - - - - - [id request_id="r1" req_id="r2" user="" username="u" action="act"] body',
    b'<14>1 - h a - - [bad', b'<14>1 - h a - - [a x="unterminated', b'<14>1 - h a - - x', b"<14>1 - h a - - -x",
    b"<14>1 2026-13-01T00:00:00Z h a - - - bad month", b"<14>1 0000-01-01T00:00:00Z h a - - - year 0",
    b"<14>1 9999-12-31T23:59:60.9999999999Z h a 4294967296 - - leap, long fraction, big pid",
    b"<14>1 2024-02-29T00:00:00,5+0000 h a 4294967295 - - comma", b"<14>1 2023-02-29T00:00:00Z h a - - - no 29th",
    b"<14>1 2026-01-01T00:00:00+05:3 h a - - - zone cut", b"<14>1", b"<14>1 ", b"<14>1 -", b"<14>1 - h",
    b"<13>Dec  3 17:59:59 myhost sshd[1234]: Accepted", b"<13>Dec 31 23:59:59 h a: x", b"<13>Jan  1 00:00:00 h a: x",
    b"<13>Feb 30 10:00:00 h app: bad day", b"<13>Foo  1 10:00:00 h app: bad month name",
    b"<13>Mar  1 2024 10:00:00 h app: year", b"<13>Mar  1 10:00:00.123456 UTC h app: zone", b"<13>Mar  1 10:00:00.1234567 h",
    b"<13>Mar  1 10:00:00 CEST: h", b"<13>Mar  1 10:00:00 CESTX h", b"<13>Mar  1 10:00:00\n", b"<13>Mar 1 10:00:00",
    b"<189>123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured", b"<189>12345678901: Mar  1 18:46:11: x",
    b"<13>.Mar  1 18:46:11: host: app: x", b"<13>2026-01-02 03:04:05 host app[7]: iso with space",
    b"<13>2026-01-02T03:04:05.123456789Z host app: iso", b"<13>sshd[7]: priority and tag", b"<13>sshd: x",
    b"<13>9app: digit tag", b"<13>app[" + b"1" * 33 + b"]: long pid", b"<13>" + b"t" * 129 + b": long tag",
    b"<13>" + b"t" * 128 + b":", b"<13>app[x y]: space in pid", b"<13>app:\n", b"<13>app:x", b"free text, no priority",
    b"<192>too big", b"<013>leading zero", b"<1234>four digits", b"<>", b"<", b"<7>", b"   ", b"\r\n\0 ",
    b"<13>Mar  1 10:00:00 %ASA-6-302013: Built", b"<13>Mar  1 10:00:00 host:: app: colons",
    b"<13>Mar  1 10:00:00 caf\xc3\xa9 app: utf-8 host", b"<13>Mar  1 10:00:00 h app: \xff\xfe invalid",
    b"<13>1 2026-01-01T00:00:00Z h a - - - \xe2\x82", b"<14>1 - h a - - [a x=\"\xc3\xa9\"] u", b"\x1c\x1d<13>x",
    b"<13>Mar\t1 10:00:00 h a: tab", b"<13>Mar  1 10:00:00\x1fh a: unit separator", b"<13>a\x1cb: sep in tag",
]
PIECES = [b"<", b">", b"<13>", b"<134>", b"<191>", b"<0>", b"1 ", b"1", b" ", b"  ", b"-", b"- ", b"[", b"]", b'"', b"=",
          b'="', b"\\", b":", b": ", b"[1]", b"[", b"Jan", b"Dec", b"Xyz", b" 1", b" 31", b" 2024", b" 10:00:00", b".5",
          b".1234567", b" UTC", b" CEST", b"2026-01-02T03:04:05", b"Z", b"+01:00", b"-0130", b",9", b"*", b".",
          b"123: ", b"host", b"app", b"%SYS", b"sd@1", b' k="v"', b"\r", b"\n", b"\0", b"\x1c", b"\xc3\xa9", b"\xff",
          b"\xe2\x82\xac", b"\xf0\x9f", b"request_id", b"user", b"action", b"t" * 40]


def _mixed(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        frame = bytearray(rng.choice(FRAMES))
        for _ in range(rng.randrange(4)):
            at = rng.randrange(len(frame) + 1)
            action = rng.randrange(3)
            if action == 0:
                frame[at:at] = rng.choice(PIECES)
            elif action == 1:
                del frame[at:at + rng.randrange(1, 4)]
            else:
                frame[at:at] = bytes([rng.randrange(256)])
        return bytes(frame)
    return b"".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 12)))


def _reference_stream(chunks: list[bytes], max_bytes: int, now: dt.datetime) -> tuple:
    splitter = FrameSplitter(max_bytes)
    records, problems, chars = [], {}, 0
    for chunk in chunks:
        got = frames_to_records(splitter.feed(chunk), len(records), 7, now)
        records += got.records
        chars += got.chars
        for reason, n in got.problems.items():
            problems[reason] = problems.get(reason, 0) + n
    return records, problems, chars, splitter.pending(), bool(splitter.broken), splitter.end()


def _native_stream(chunks: list[bytes], max_bytes: int, now: dt.datetime) -> tuple:
    reader = StreamReader(max_bytes)
    records, problems, chars = [], {}, 0
    for chunk in chunks:
        got = reader.feed_records(chunk, len(records), 7, now)
        records += got.records
        chars += got.chars
        for reason, n in got.problems.items():
            problems[reason] = problems.get(reason, 0) + n
    return records, problems, chars, reader.pending(), bool(reader.broken), reader.end()


@pytest.mark.parametrize("now", [NOW, NEW_YEAR], ids=["december", "new-year"])
@pytest.mark.parametrize("frame", FRAMES, ids=range(len(FRAMES)))
def test_each_variant_as_a_datagram_gives_the_python_record(frame, now):
    for max_bytes in (len(frame) + 1, max(1, len(frame) - 3), 64):
        python = datagram(frame, max_bytes, 3, 7, now, use_native=False)
        assert datagram(frame, max_bytes, 3, 7, now) == python


def test_random_frames_as_datagrams_give_the_python_records():
    rng = random.Random(29)
    for _ in range(20_000):
        frame = _mixed(rng)
        max_bytes = rng.choice([len(frame) + 5, rng.randrange(1, len(frame) + 2), 64])
        now = rng.choice([NOW, NEW_YEAR])
        assert datagram(frame, max_bytes, 0, 7, now) == datagram(frame, max_bytes, 0, 7, now, use_native=False), frame


@pytest.mark.parametrize("framing", ["octet", "lf"])
def test_random_streams_cut_anywhere_give_the_python_records_and_state(framing):
    rng = random.Random(framing)
    for _ in range(1500):
        frames = [_mixed(rng) for _ in range(rng.randrange(1, 8))]
        if framing == "octet":
            stream = b"".join(b"%d %s%s" % (len(f), f, rng.choice([b"", b"", b"\n", b"\r\n"])) for f in frames)
            if rng.random() < 0.1:     # a broken length field somewhere
                at = rng.randrange(len(stream))
                stream = stream[:at] + rng.choice([b"x", b"0", b"12345678901", b" "]) + stream[at:]
        else:
            stream = b"\n".join(f.replace(b"\n", b"") for f in frames) + rng.choice([b"", b"\n"])
        cuts = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randrange(4)))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
        max_bytes = rng.choice([64, 100, 4096])
        assert _native_stream(chunks, max_bytes, NOW) == _reference_stream(chunks, max_bytes, NOW), stream


def test_hostile_streams_give_the_python_answer():
    cases = [
        [b"9" * 11], [b"99999999999 x"], [b"0 x"], [b"5 ab"], [b"5 ab", b"cde6 abcdef"], [b"1000 " + b"a" * 70, b"b" * 2000],
        [b"1 a1 b\n\r\n2 cd"], [b"200 " + b"x" * 200 + b"3 abc"], [b"x" * 300 + b"\nshort\n"], [b"a" * 70, b"b" * 70, b"\n"],
        [b"\n\n\n"], [b"7 <13>\xff\xfe\n"], [b"3 \xe2\x82\xac"], [b"12 <13>Mar  1 1"], [b"1 "], [b"2"],
    ]
    for chunks in cases:
        for max_bytes in (64, 100):
            assert _native_stream(chunks, max_bytes, NOW) == _reference_stream(chunks, max_bytes, NOW), chunks
