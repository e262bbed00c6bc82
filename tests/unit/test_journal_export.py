"""The journal export format parser (agent/sources/journal_export.py) and the journal-upload
receiver's mapping and config: text and binary fields, input split anywhere, bounds, junk counted."""

from __future__ import annotations

import struct

import pytest

from fleetlog.agent.config import load_agent_config
from fleetlog.agent.sources.base import FLAG_TRUNCATED
from fleetlog.agent.sources.journal_export import MAX_FIELDS, ExportEntry, ExportParser
from fleetlog.agent.sources.journal_upload import export_record
from fleetlog.common.errors import ConfigError

CURSOR = b"s=6d0d7a7c1b2a4e0f9c3b5a6d7e8f9012;i=2a;b=0123456789abcdef0123456789abcdef;m=f4240;t=5f1c;x=77"


def binary(name: bytes, value: bytes) -> bytes:
    return name + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"


STREAM = (b"__CURSOR=" + CURSOR + b"\n__REALTIME_TIMESTAMP=1764685845000000\n_BOOT_ID=0123456789abcdef0123456789abcdef\n"
          b"_HOSTNAME=node-3\nPRIORITY=3\nSYSLOG_IDENTIFIER=backup\n_PID=4242\n_SYSTEMD_UNIT=backup.service\n"
          b"MESSAGE=disk full\n\n"
          + binary(b"MESSAGE", b"two\nlines \xff") + b"__CURSOR=s=abc;i=2b\nEMPTY=\n" + binary(b"BLOB", b"") + b"\n")
EXPECTED = [
    {"__CURSOR": CURSOR, "__REALTIME_TIMESTAMP": b"1764685845000000", "_BOOT_ID": b"0123456789abcdef0123456789abcdef",
     "_HOSTNAME": b"node-3", "PRIORITY": b"3", "SYSLOG_IDENTIFIER": b"backup", "_PID": b"4242",
     "_SYSTEMD_UNIT": b"backup.service", "MESSAGE": b"disk full"},
    {"MESSAGE": b"two\nlines \xff", "__CURSOR": b"s=abc;i=2b", "EMPTY": b"", "BLOB": b""},
]


def parse(data: bytes, max_message_bytes: int = 1000, step: int = 0) -> tuple[list[ExportEntry], ExportParser]:
    parser = ExportParser(max_message_bytes)
    out: list[ExportEntry] = []
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        out += parser.feed(data[i:i + step])
    parser.end()
    return out, parser


def test_text_and_binary_fields():
    entries, parser = parse(STREAM)
    assert [e.fields for e in entries] == EXPECTED
    assert not any(e.truncated for e in entries) and not parser.problems


@pytest.mark.parametrize("step", [1, 2, 3, 5, 8, 13])
def test_split_anywhere_across_chunks(step):
    entries, parser = parse(STREAM, step=step)
    assert [e.fields for e in entries] == EXPECTED and not parser.problems


def test_split_at_every_single_place():
    for cut in range(len(STREAM) + 1):
        parser = ExportParser(1000)
        entries = parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:])
        parser.end()
        assert [e.fields for e in entries] == EXPECTED, cut
        assert not parser.problems, cut


def test_message_cut_at_max_message_bytes_and_marked():
    entries, parser = parse(b"MESSAGE=" + b"a" * 150 + b"\n__CURSOR=s=x;i=1\n\n" + binary(b"MESSAGE", b"b" * 300) + b"\n",
                            max_message_bytes=100)
    assert [e.fields["MESSAGE"] for e in entries] == [b"a" * 100, b"b" * 100]
    assert all(e.truncated for e in entries)
    assert parser.problems == {"too_long": 2}


def test_other_fields_bounded_per_field_and_per_entry():
    data = (b"BIG=" + b"x" * 101 + b"\n" + binary(b"BIGBIN", b"y" * 500) + b"A=" + b"1" * 60 + b"\nB=" + b"2" * 60
            + b"\nMESSAGE=" + b"m" * 100 + b"\n\n")
    entries, parser = parse(data, max_message_bytes=100)
    assert entries[0].fields == {"A": b"1" * 60, "MESSAGE": b"m" * 100}
    assert not entries[0].truncated
    assert parser.problems == {"field_too_long": 2, "entry_too_large": 1}


def test_too_many_fields_are_dropped_and_counted_once():
    data = b"".join(b"F%d=v\n" % i for i in range(MAX_FIELDS + 10)) + b"\n"
    entries, parser = parse(data, max_message_bytes=100_000)
    assert len(entries[0].fields) == MAX_FIELDS and "F1023" in entries[0].fields and "F1024" not in entries[0].fields
    assert parser.problems == {"too_many_fields": 1}


def test_junk_is_counted_never_raised():
    entries, parser = parse(b"lower=case\n=no name\nMESSAGE=kept\n" + b"N" * 200 + b"\nOK=1\n\n\n\n")
    assert [e.fields for e in entries] == [{"MESSAGE": b"kept", "OK": b"1"}]
    assert parser.problems == {"bad_field_name": 3}

    entries, parser = parse(b"MESSAGE=first\n\n" + b"MESSAGE\n" + struct.pack("<Q", 2) + b"abX\nMESSAGE=after\n\n")
    assert [e.fields for e in entries] == [{"MESSAGE": b"first"}]
    assert parser.broken and parser.problems == {"bad_binary_end": 1}
    assert parser.feed(b"MESSAGE=more\n\n") == []

    entries, parser = parse(b"MESSAGE=whole\n\nMESSAGE=half")
    assert [e.fields for e in entries] == [{"MESSAGE": b"whole"}] and parser.problems == {"cut_entry": 1}
    _, parser = parse(b"BIN\n" + struct.pack("<Q", 1 << 62) + b"not that long")
    assert parser.problems == {"cut_entry": 1}


def test_a_huge_binary_value_is_read_through_without_being_kept():
    parser = ExportParser(100)
    parser.feed(b"COREDUMP\n" + struct.pack("<Q", 10_000_000))
    for _ in range(100):
        parser.feed(b"\0" * 100_000)
        assert len(parser._buffer) == 0 and len(parser._value) <= 100
    entries = parser.feed(b"\nMESSAGE=after the core\n__CURSOR=s=a;i=1\n\n")
    assert [e.fields for e in entries] == [{"MESSAGE": b"after the core", "__CURSOR": b"s=a;i=1"}]
    assert parser.problems == {"field_too_long": 1}


def test_export_record_uses_the_journald_mapping():
    entries, _ = parse(STREAM)
    label, key, record = export_record(entries[0])
    assert (label, key) == ("journald:backup.service", "journald:6d0d7a7c1b2a4e0f9c3b5a6d7e8f9012")
    assert (record.position, record.app, record.pid, record.flags) == (0x2A, "backup", 4242, 0)
    parsed = record.parsed
    assert (parsed.time_us, parsed.level, parsed.message, parsed.claimed_host) == (
        1_764_685_845_000_000, 3, "disk full", "node-3")
    assert parsed.fields == {"boot_id": "0123456789abcdef0123456789abcdef", "cursor": CURSOR.decode()}

    label, key, record = export_record(entries[1])
    assert (label, key, record.position) == ("journald:journal", "journald:abc", 0x2B)
    assert record.parsed.message == "two\nlines \ufffd"
    assert record.parsed.fields == {"empty": "", "blob": "", "invalid_utf8": True, "cursor": "s=abc;i=2b"}

    assert export_record(ExportEntry({"MESSAGE": b"no cursor"})) is None
    assert export_record(ExportEntry({"__CURSOR": b"garbage"})) is None


def test_a_cut_message_does_not_end_in_half_a_character():
    entries, _ = parse(b"__CURSOR=s=a;i=1\nMESSAGE=" + "é".encode() * 40 + b"\n\n", max_message_bytes=65)
    _, _, record = export_record(entries[0])
    assert record.parsed.message == "é" * 32 and record.flags == FLAG_TRUNCATED
    assert "invalid_utf8" not in (record.parsed.fields or {})


@pytest.mark.parametrize("source, message", [
    ('listen = "0.0.0.0:19532"', "plain HTTP only on a loopback address"),
    ('listen = ":19532"', "plain HTTP only on a loopback address"),
    ('listen = "127.0.0.1"', "expected HOST:PORT"),
    ('listen = "127.0.0.1:19532"\ntls = { cert = "/x.crt" }', "needs cert and key"),
    ('listen = "127.0.0.1:19532"\nspool_wait = "0s"', "spool_wait: must be more than 0"),
    ('listen = "127.0.0.1:19532"\nmax_message_bytes = 10', "at least 64 bytes"),
    ('listen = "127.0.0.1:19532"\nfollow = true', "follow"),
])
def test_config_errors_are_one_line(tmp_path, source, message):
    path = tmp_path / "agent.toml"
    path.write_text(f'[[sources]]\ntype = "journal-upload"\n{source}\n')
    with pytest.raises(ConfigError) as error:
        load_agent_config(str(path))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("listen", ["127.0.0.1:19532", "[::1]:19532", "localhost:19532", "127.0.0.9:1"])
def test_plain_http_on_loopback_is_allowed(tmp_path, listen):
    path = tmp_path / "agent.toml"
    path.write_text(f'[[sources]]\ntype = "journal-upload"\nlisten = "{listen}"\n')
    assert load_agent_config(str(path)).sources[0].listen == listen


def test_https_may_listen_on_every_address(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('[[sources]]\ntype = "journal-upload"\nlisten = ":19532"\n'
                    'tls = { cert = "/etc/fleetlog/relay.crt", key = "/etc/fleetlog/relay.key", ca = "/etc/ca.pem" }\n')
    assert load_agent_config(str(path)).sources[0].listener == "journal-upload-19532"


def test_whole_entries_and_field_by_field_agree():
    """The one-step path for whole entries of text fields gives what the field-by-field path gives
    (the entry cut in two takes the second): names given twice, values at and over the bounds."""
    cases = [b"A=" + b"1" * 50 + b"\nA=" + b"2" * 60 + b"\nMESSAGE=m\n\n",
             b"A=" + b"1" * 90 + b"\nB=" + b"2" * 20 + b"\n\n",
             b"MESSAGE=" + b"x" * 100 + b"\nMESSAGE=" + b"y" * 101 + b"\n\n",
             b"MESSAGE=" + b"x" * 100 + b"\nA=" + b"a" * 100 + b"\n\n"]
    for data in cases:
        whole, whole_parser = parse(data * 2, max_message_bytes=100)
        split, split_parser = parse(data * 2, max_message_bytes=100, step=7)
        assert [(e.fields, e.truncated) for e in whole] == [(e.fields, e.truncated) for e in split], data
        assert whole_parser.problems == split_parser.problems, data
