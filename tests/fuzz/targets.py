"""Fuzz targets: every parser that reads outside data, each a function of one byte string.

A target raises only when it finds a bug: an exception the code should have turned into its own
error (BadBatch, UsageError, ConfigError, VerificationError), or output that breaks a property
(an ingest batch that passes validation but cannot be presented, a syslog frame rsyslog would
not parse). The same functions run under atheris (`make fuzz`, coverage-guided) and, with the
inputs it found, as regression tests in the normal suite (tests/unit/test_fuzz_regressions.py);
so they depend on nothing but the standard library and fleetlog.
"""

from __future__ import annotations

import atexit
import functools
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from typing import Any

TARGETS: dict[str, Callable[[bytes], None]] = {}


def target(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
    TARGETS[fn.__name__] = fn
    return fn


SCRATCH_ENV = "FLEETLOG_FUZZ_SCRATCH"


def _scratch(name: str) -> str:
    """A path in the one temporary folder of this process, for the targets that read files.

    The folder goes when the process ends (atexit). `make fuzz` children end through libFuzzer's
    own exit, which skips atexit: tests/fuzz/run.py gives them a folder it removes itself."""
    global _SCRATCH
    if "_SCRATCH" not in globals():
        _SCRATCH = os.environ.get(SCRATCH_ENV) or tempfile.mkdtemp(prefix="fleetlog-fuzz-")
        if SCRATCH_ENV not in os.environ:
            atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
    return os.path.join(_SCRATCH, name)


class Input:
    """Structured values drawn from the fuzzer's bytes (like atheris' FuzzedDataProvider, but
    plain Python, so regression tests run without atheris)."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def int(self, nbytes: int = 1) -> int:
        chunk = self.data[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return int.from_bytes(chunk.ljust(nbytes, b"\0"), "little")

    def signed(self, nbytes: int) -> int:
        value = self.int(nbytes)
        return value - (1 << (8 * nbytes - 1))

    def pick(self, options: list[Any] | tuple[Any, ...]) -> Any:
        return options[self.int() % len(options)]

    def bytes(self, limit: int = 64) -> bytes:
        n = min(self.int(), limit)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def text(self, limit: int = 64) -> str:
        return self.bytes(limit).decode("utf-8", "replace")

    def rest(self) -> bytes:
        chunk, self.pos = self.data[self.pos:], len(self.data)
        return chunk


# -- collector: the ingest decoding path ----------------------------------------------------------

def _classifier():
    from fleetlog.collector.classify import Classifier
    from fleetlog.collector.config import CollectorConfig
    global _CLASSIFIER
    if "_CLASSIFIER" not in globals():
        _CLASSIFIER = Classifier(CollectorConfig(node_name="fuzz", data_dir=tempfile.gettempdir()))
    return _CLASSIFIER


def _ingest(raw: bytes) -> None:
    from fleetlog.collector.ingest import (
        BadBatch,
        IngestLimits,
        Origin,
        decode_request,
        prepare_chunks,
        unpack,
    )
    from fleetlog.common.event import present
    limits = IngestLimits(max_message_bytes=1 << 20, max_batch_events=10_000)
    try:
        request = decode_request(raw)
        if not request.HasField("batch"):
            return
        prepared = prepare_chunks(unpack(request.batch, limits), Origin("fuzz", "127.0.0.1", claimed="other"),
                                  _classifier())
    except BadBatch as exc:
        assert exc.reason and str(exc)
        return
    # What passed validation must be storable and presentable (contract §3 output values).
    for events in prepared.events:
        for i in range(len(events)):
            present({"time": events.time_us[i], "received_at": 0, "level": events.level[i],
                     "fields": events.fields_json[i] or None, "truncated": events.flags[i] & 1})
            assert 0 <= events.position[i] < 1 << 63


@target
def ingest_bytes(data: bytes) -> None:
    """Whatever a peer sends on Ingest/Stream, as raw message bytes."""
    _ingest(data)


@target
def ingest_batch(data: bytes) -> None:
    """Well-formed protobuf with fuzzed contents: column lengths, levels, times, positions,
    codecs, fields_json, zstd and gzip payloads."""
    import gzip

    import zstandard

    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
    given = Input(data)
    chunks = []
    for _ in range(given.int() % 3 + 1):
        n = given.int() % 5
        lengths = {name: n + (given.int() % 3 - 1 if given.int() % 6 == 0 else 0) for name in (
            "time_us", "level", "message", "fields_json", "flags", "pid")}
        chunks.append(pb.Chunk(
            source=given.text(20), source_key=given.text(10), namespace=given.pick(["", "default", "x"]),
            log_type=given.text(8),
            position=[given.int(8) for _ in range(n)],
            time_us=[given.signed(8) for _ in range(max(0, lengths["time_us"]))],
            level=bytes(given.int() % 10 for _ in range(max(0, lengths["level"]))),
            message=[given.text(30) for _ in range(max(0, lengths["message"]))],
            request_id=[""] * n, user=[given.text(5) for _ in range(n)], action=[given.text(8) for _ in range(n)],
            app=[""] * n, pid=[given.int(4) for _ in range(max(0, lengths["pid"]))],
            fields_json=[given.pick(["", "{}", '{"a":1}', "[]", "null", "{", given.text(20)])
                         for _ in range(max(0, lengths["fields_json"]))],
            flags=bytes(given.int() for _ in range(max(0, lengths["flags"]))),
            claimed_host=[given.text(5) for _ in range(n)] if given.int() % 4 == 0 else []))
    batch = pb.Batch(batch_id=given.int(8), codec=given.pick([0, 0, 1, 1, 2, 2, 3]))
    if batch.codec in (pb.CODEC_ZSTD, pb.CODEC_GZIP):
        whole = pb.Chunks(chunks=chunks).SerializeToString()
        packed = (zstandard.ZstdCompressor().compress(whole) if batch.codec == pb.CODEC_ZSTD
                  else gzip.compress(whole, compresslevel=1))
        cut = given.int(2)
        batch.packed = packed[:cut] if cut % 5 == 0 else packed + given.text(3).encode() if cut % 7 == 0 else packed
    else:
        batch.chunks.extend(chunks)
    _ingest(pb.IngestRequest(batch=batch).SerializeToString())


# -- agent: line parsers, multiline joining, journal mapping --------------------------------------

def _agent_chunk(records: list[Any]) -> None:
    """The agent must be able to put whatever it parsed on the wire."""
    from fleetlog.agent.batcher import build_chunk
    from fleetlog.agent.sources.base import SourceBatch
    from fleetlog.common.levels import Level
    batch = SourceBatch(source="file:/fuzz.log", source_key="k", log_type="application", records=records,
                        checkpoint=None, read_bytes=0, min_level=int(Level.DEBUG))
    chunk, _ = build_chunk(batch, "default")
    chunk.SerializeToString()


def _check_parsed(parsed: Any) -> None:
    assert parsed.level is None or 0 <= parsed.level <= 7, parsed.level
    assert isinstance(parsed.message, str)
    if parsed.time_us is not None:
        from fleetlog.collector.ingest import MAX_TIME_US, MIN_TIME_US
        assert MIN_TIME_US <= parsed.time_us <= MAX_TIME_US, parsed.time_us


def _decode_line(raw: bytes) -> str:
    """As the file source does: UTF-8, else with replacement characters."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")


@target
def agent_parsers(data: bytes) -> None:
    """auto, json, plain and regex parsers over one line (invalid UTF-8 included)."""
    from fleetlog.agent.parse import make_parser
    from fleetlog.agent.sources.base import Record
    line = _decode_line(data)
    records = []
    for kind, pattern in (("auto", ""), ("json", ""), ("plain", ""),
                          ("regex", r"^(?P<time>\S+) (?P<level>\w+) (?P<request_id>\S+)? ?(?P<message>.*)")):
        parsed = make_parser(kind, pattern)(line)
        _check_parsed(parsed)
        records.append(Record(len(records), parsed, "", 0, 0, parsed.time_us or 0))
    _agent_chunk(records)


@target
def agent_multiline(data: bytes) -> None:
    """Lines joined by a start pattern: nothing lost or reordered, events never over the limit."""
    from fleetlog.agent.sources.multiline import MultilineJoiner
    given = Input(data)
    limit = given.int() % 64 + 1
    joiner = MultilineJoiner(given.pick([r"^\d{4}-", r"^\S", r"^(INFO|ERROR)"]), 1.0, limit)
    out: list[Any] = []
    lines, position = [], 0
    while given.pos < len(data):
        line = _decode_line(given.bytes(40)).replace("\n", " ")
        lines.append(line)
        joiner.feed(position, line, 0, float(position), out)
        position += len(line) + 1
    joiner.flush(out)
    assert [j.position for j in out] == sorted(j.position for j in out)
    for joined in out:
        assert len(joined.text) <= limit
    if all(not j.flags for j in out):
        assert "\n".join(j.text for j in out) == "\n".join(lines)


@target
def journal_entry(data: bytes) -> None:
    """One line of `journalctl --output=json`, as the journald source maps it."""
    from fleetlog.agent.sources.journald import entry_to_record
    try:
        entry = json.loads(data)
    except (ValueError, RecursionError):
        return
    if not isinstance(entry, dict):
        return
    mapped = entry_to_record(entry)
    if mapped is None:
        return
    _label, _key, record = mapped
    _check_parsed(record.parsed)
    _agent_chunk([record])


def _limit_cut_stream(data: bytes, spread: int) -> tuple[int, int, bytes]:
    """A receiver's input: a max_message_bytes of 64 + [0, spread), where TCP cuts it, the bytes."""
    given = Input(data)
    limit = given.int() % spread + 64
    cut = given.int(2)
    return limit, cut, given.rest()


@target
def journal_export(data: bytes) -> None:
    """A journal-upload body: the export format parsed whole and cut at a fuzzed place gives the
    same entries and counts; every entry within its bounds, mapped without raising, onto the wire."""
    from fleetlog.agent.sources.journal_export import MAX_FIELDS, ExportParser
    from fleetlog.agent.sources.journal_upload import export_record
    limit, cut, stream = _limit_cut_stream(data, 300)
    whole, split = ExportParser(limit), ExportParser(limit)
    entries = whole.feed(stream)
    whole.end()
    pieces = split.feed(stream[:cut]) + split.feed(stream[cut:])
    split.end()
    assert [(e.fields, e.truncated) for e in entries] == [(e.fields, e.truncated) for e in pieces]
    assert whole.problems == split.problems, (whole.problems, split.problems)
    records = []
    for entry in entries:
        assert len(entry.fields) <= MAX_FIELDS
        assert len(entry.fields.get("MESSAGE", b"")) <= limit
        assert sum(len(v) for k, v in entry.fields.items() if k != "MESSAGE") <= limit
        mapped = export_record(entry)
        if mapped is not None:
            _check_parsed(mapped[2].parsed)
            records.append(mapped[2])
    _agent_chunk(records)


# -- collector: search filters and --where ---------------------------------------------------------

FILTER_KEYS = ("since", "until", "date", "min_level", "level", "request_id", "user", "host", "message",
               "message_regex", "log_type", "source", "namespace", "app", "action", "where")


def _query_engine():
    global _ENGINE
    if "_ENGINE" not in globals():
        from fleetlog.collector.query import QueryEngine
        from fleetlog.collector.store.sqlite import SqliteStore
        from tests.unit.store_helpers import incoming
        path = _scratch("events.db")
        store = SqliteStore(path, "normal", collector="fuzz")
        store.store_batch([incoming("web-1", "a.log", list(range(20)), users=[f"u{i % 3}" for i in range(20)],
                                    messages=[f"line {i} \"quoted\" user=x%_ 100%" for i in range(20)])],
                          1_700_000_000_000_000)
        store.close()
        _ENGINE = QueryEngine(path)
    return _ENGINE


@target
def search_filters(data: bytes) -> None:
    """Filters as an operator types them: a usage error naming the flag, or a query that runs."""
    from fleetlog.collector.filters import build_filter_spec
    from fleetlog.common.errors import UsageError
    given = Input(data)
    raw = {given.pick(FILTER_KEYS): given.text(40) for _ in range(given.int() % 4 + 1)}
    try:
        spec = build_filter_spec(raw, now=1_700_000_000_000_000)
    except UsageError as exc:
        assert str(exc).startswith("--"), str(exc)
        return
    for page in _query_engine().search(spec, limit=given.pick([0, 5])):
        assert isinstance(page, list)


@target
def where_parser(data: bytes) -> None:
    """The classic `--where 'field=pat; field2=pat'` syntax."""
    from fleetlog.collector.filters import build_filter_spec
    from fleetlog.common.errors import UsageError
    try:
        spec = build_filter_spec({"where": _decode_line(data)})
    except UsageError as exc:
        assert "--where" in str(exc), str(exc)
        return
    list(_query_engine().search(spec, limit=5))


@target
def console_query(data: bytes) -> None:
    """The console's query string (collector/web/queries.py), as /events and /api/v1/events read
    it: a UsageError naming the parameter (HTTP 400), or a FilterSpec whose first page runs."""
    from dataclasses import replace
    from urllib.parse import parse_qsl

    from fleetlog.collector.filters import FilterSpec, build_filter_spec
    from fleetlog.collector.web import queries
    from fleetlog.common.errors import UsageError
    query: dict[str, str] = {}
    for key, value in parse_qsl(_decode_line(data), keep_blank_values=True):
        query.setdefault(key, value)           # aiohttp's request.query[key]: the first value
    try:
        raw = queries.raw_filters(query, queries.PAGE_KEYS + ("columns",))
        limit = queries.parse_limit(query.get("limit"))
        order = queries.parse_order(query.get("order"))
        queries.columns_of(query.get("columns"))
        spec = build_filter_spec(raw)
        if query.get("_next"):
            key = queries.parse_next(query["_next"])
            spec = replace(spec, before_key=key) if order == "desc" else replace(spec, after_key=key)
    except UsageError as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return
    assert isinstance(spec, FilterSpec) and 1 <= limit <= queries.MAX_LIMIT
    next(_query_engine().search(spec, order=order, limit=min(limit, 5), page_size=5), [])


_EXPORT_COLUMNS = ("seq", "time", "level", "host", "user", "message", "fields", "pid", "truncated", "id")


def _export_value(given: Input, column: str) -> Any:
    kind = given.int() % 8
    if kind == 0:
        return None
    if column in ("seq", "pid"):
        return given.int(8)
    if column == "truncated":
        return bool(kind % 2)
    if column == "fields":
        return {given.text(8): given.pick([given.text(20), given.signed(8), None, True, [given.text(4)],
                                           {given.text(4): given.text(4)}]) for _ in range(kind % 3)}
    return given.pick(["", "=1+2", "+cmd", "-x", "@SUM(A1)", "\t=x", "\r\n", "\x00", "\u2028", given.text(80)]) \
        + given.text(40)


@target
def export_writers(data: bytes) -> None:
    """CSV, JSON lines, XLSX and PDF with any field values: each file reads back — CSV through the
    csv module with one row per event and every value (a leading quote allowed: formulas are
    neutralised), JSON lines one object per line with the values written, XLSX well-formed XML
    with one row per event, PDF a whole document."""
    import csv
    import zipfile
    from xml.etree import ElementTree

    from fleetlog.common.export.columns import cell
    from fleetlog.common.export.writers import EXPORTERS
    given = Input(data)
    fmt = given.pick(sorted(EXPORTERS))
    columns = [c for c in _EXPORT_COLUMNS if given.int() % 3] or ["message"]
    events = [{c: _export_value(given, c) for c in columns} for _ in range(given.int() % 6)]
    path = _scratch(f"export.{fmt}")
    exporter = EXPORTERS[fmt](path, columns, title=given.text(20), filters=given.text(40), collector="fuzz")
    for event in events:
        exporter.write(event)
    exporter.close()
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == columns and len(rows) == len(events) + 1, (len(rows), len(events))
        for row, event in zip(rows[1:], events):
            assert [v in (cell(event[c]), "'" + cell(event[c])) for v, c in zip(row, columns)] == [True] * len(columns), \
                (row, event)
    elif fmt == "jsonl":
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        assert lines[-1] == "" and len(lines) == len(events) + 1
        assert [json.loads(line) for line in lines[:-1]] == events
    elif fmt == "xlsx":
        with zipfile.ZipFile(path) as book:
            sheet = ElementTree.fromstring(book.read("xl/worksheets/sheet1.xml"))
        rows = sheet.findall(".//{http://schemas.openxmlformats.org/spreadsheetml/2006/main}row")
        # constant_memory mode writes no element for a row without a value
        written = [e for e in events if any(v is not None and v != "" for v in e.values())]
        assert len(rows) == len(written) + 1, (len(rows), len(written))
    else:
        with open(path, "rb") as handle:
            content = handle.read()
        assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")


# -- both daemons: TOML configuration --------------------------------------------------------------

@target
def toml_config(data: bytes) -> None:
    """agent.toml, collector.toml and tokens.toml loaders: a ConfigError or a config."""
    from fleetlog.agent.config import AgentConfig
    from fleetlog.collector.config import CollectorConfig
    from fleetlog.collector.identity import TokensFile
    from fleetlog.common.config import load_config
    from fleetlog.common.errors import ConfigError
    given = Input(data)
    cls = given.pick([AgentConfig, CollectorConfig, TokensFile])
    path = _scratch("fuzz.toml")
    with open(path, "wb") as handle:
        handle.write(given.rest())
    try:
        load_config(cls, path)
    except ConfigError as exc:
        assert "\n" not in str(exc).strip() or "invalid TOML" in str(exc), str(exc)


@target
def toml_config_values(data: bytes) -> None:
    """Valid TOML with fuzzed values in real keys (sizes, durations, levels, lists, tables)."""
    from fleetlog.agent.config import AgentConfig
    from fleetlog.collector.config import CollectorConfig
    from fleetlog.common.config import build_config
    from fleetlog.common.errors import ConfigError
    given = Input(data)
    values = [given.text(12), given.signed(4), [given.text(6)], {"x": given.text(4)}, True, 1.5e300,
              float("nan"), -1, 0, "1KiB", "90d", "indefinite", "warning"]
    agent_keys = {"spool": ["max_bytes", "when_full"], "batch": ["max_events", "max_bytes", "max_wait", "compression"],
                  "": ["node_name", "collectors", "state_dir", "namespace"]}
    collector_keys = {"retention": ["general", "security", "purge_interval"], "ingest": ["max_message_bytes",
                      "max_batch_events", "max_pending_bytes"], "signing": ["checkpoint_every", "checkpoint_interval"],
                      "levels": ["default"], "": ["listen", "insecure"]}
    cls, keys = given.pick([(AgentConfig, agent_keys), (CollectorConfig, collector_keys)])
    data_dict: dict[str, Any] = {"collectors": ["127.0.0.1:1"]} if cls is AgentConfig else {}
    for _ in range(given.int() % 4 + 1):
        table = given.pick(list(keys))
        key = given.pick(keys[table])
        (data_dict.setdefault(table, {}) if table else data_dict)[key] = given.pick(values)
    if cls is AgentConfig and given.int() % 2:
        data_dict["sources"] = [{"type": given.pick(["file", "journald", "x"]), "paths": [given.text(8)],
                                 "parser": given.pick(["auto", "regex", "json"]), "pattern": given.text(12),
                                 "multiline": {"start_pattern": given.text(8)}, "max_line_bytes": given.pick(values)}]
    try:
        build_config(cls, data_dict, "fuzz.toml")
    except ConfigError:
        pass


# -- collector: syslog formatters ------------------------------------------------------------------

_HEADER = re.compile(
    rb"<(\d{1,3})>1 ((?:[01]\d{3}|20\d\d)-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z|-) ([\x21-\x7e]{1,255}) ([\x21-\x7e]{1,48}) "
    rb"([\x21-\x7e]{1,128}) ([\x21-\x7e]{1,32}) ")


def _event(given: Input) -> dict[str, Any]:
    from fleetlog.collector.ingest import MAX_TIME_US, MIN_TIME_US
    from fleetlog.common.levels import LEVEL_NAMES
    from fleetlog.common.timefmt import format_us
    fields = {given.text(10): given.pick([given.text(20), given.signed(4), None, [1, "]"], {"a": '"'}])
              for _ in range(given.int() % 4)}
    when = MIN_TIME_US + given.int(8) % (MAX_TIME_US - MIN_TIME_US)   # what ingest lets be stored
    return {"time": format_us(when), "level": given.pick(LEVEL_NAMES), "host": given.text(20),
            "app": given.text(10) or None, "pid": given.pick([None, given.int(4)]), "action": given.text(10),
            "log_type": given.text(6), "request_id": given.text(10), "user": given.text(10),
            "message": given.text(80), "fields": fields, "namespace": "default", "source": given.text(10),
            "seq": given.int(4), "id": "ab", "tier": "general", "collector": "c"}


def _sd_name(frame: bytes, i: int) -> int:
    """End of an SD-NAME at i: 1-32 PRINTUSASCII except '=', SP, ']' and '"'."""
    j = i
    while j < len(frame) and 0x21 <= frame[j] <= 0x7E and frame[j] not in b'= ]"':
        j += 1
    assert 1 <= j - i <= 32, (frame[i:i + 40], j - i)
    return j


def _structured_data_end(frame: bytes, i: int) -> int:
    """RFC 5424 §6.3, strictly: `-` or SD-ELEMENTs `[SD-ID *(SP PARAM-NAME="PARAM-VALUE")]`, where
    the value escapes `"`, `\\` and `]` with a backslash (the formatter escapes every backslash)."""
    if frame[i:i + 1] == b"-":
        return i + 1
    assert frame[i:i + 1] == b"[", frame[i:i + 40]
    while frame[i:i + 1] == b"[":
        i = _sd_name(frame, i + 1)
        while frame[i:i + 1] == b" ":
            i = _sd_name(frame, i + 1)
            assert frame[i:i + 2] == b'="', frame[i:i + 40]
            i += 2
            while True:
                c = frame[i:i + 1]
                assert c, "value not closed"
                if c == b"\\":
                    assert frame[i + 1:i + 2] in (b'"', b"\\", b"]"), frame[i:i + 10]
                    i += 2
                elif c == b'"':
                    i += 1
                    break
                else:
                    assert c != b"]", frame[i - 20:i + 20]
                    i += 1
        assert frame[i:i + 1] == b"]", frame[i:i + 40]
        i += 1
    return i


def _check_rfc5424(frame: bytes) -> None:
    """The grammar of RFC 5424 §6 as rsyslog's parser needs it: header fields of PRINTUSASCII
    within their lengths, SD elements with valid names and escaped values, then the message."""
    header = _HEADER.match(frame)
    assert header, frame[:120]
    assert 0 <= int(header.group(1)) <= 191
    end = _structured_data_end(frame, header.end())
    assert frame[end:] == b"" or frame[end:end + 1] == b" ", frame[end:end + 40]
    frame.decode("utf-8")


@target
def syslog_rfc5424(data: bytes) -> None:
    """Whatever an event holds, the RFC 5424 frame is well-formed, and framing keeps it one frame."""
    from fleetlog.collector.forward.rfc5424 import format_rfc5424
    from fleetlog.collector.forward.syslog_common import frame_lf, frame_octet_counting
    given = Input(data)
    message = format_rfc5424(_event(given), given.int() % 24, given.text(10) or "fleetlog").encode("utf-8", "replace")
    _check_rfc5424(message)
    lf = frame_lf(message)
    assert lf.count(b"\n") == 1 and lf.endswith(b"\n")
    counted = frame_octet_counting(message)
    length, _, body = counted.partition(b" ")
    assert int(length) == len(body)


@target
def syslog_rfc3164(data: bytes) -> None:
    """RFC 3164: `<PRI>Mmm dd hh:mm:ss HOST TAG: MSG` with a host and tag rsyslog can split."""
    from fleetlog.collector.forward.rfc3164 import format_rfc3164
    from fleetlog.collector.forward.syslog_common import frame_lf
    given = Input(data)
    message = format_rfc3164(_event(given), given.int() % 24, given.text(10) or "fleetlog").encode("utf-8", "replace")
    match = re.match(rb"<(\d{1,3})>(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d "
                     rb"([A-Za-z0-9._-]*[A-Za-z0-9]) ([A-Za-z0-9_.\-/]{1,32}(?:\[\d+\])?): ", message)
    assert match, message[:120]
    assert int(match.group(1)) <= 191
    assert frame_lf(message).count(b"\n") == 1


# -- agent: the syslog receiver -------------------------------------------------------------------

@target
def syslog_receiver(data: bytes) -> None:
    """Bytes as a syslog listener gets them: one datagram, and the same bytes as a TCP stream cut
    at a fuzzed place; every frame parses without raising, within its bounds, onto the wire."""
    from fleetlog.agent.sources.syslog_framing import FrameSplitter
    from fleetlog.agent.sources.syslog_parse import parse_syslog
    from fleetlog.agent.sources.syslog_records import to_record
    limit, cut, stream = _limit_cut_stream(data, 200)
    splitter = FrameSplitter(limit)
    frames = splitter.feed(stream[:cut]) + splitter.feed(stream[cut:])
    last = splitter.end()
    frames += [last] if last else []
    records = []
    for raw, truncated in [(stream, False), *frames]:
        assert len(raw) <= limit or raw is stream, (len(raw), limit)
        message = parse_syslog(raw)
        assert message.severity is None or 0 <= message.severity <= 7
        assert 0 <= message.pid < 1 << 32
        record = to_record(message, len(records), truncated, 0)
        _check_parsed(record.parsed)
        records.append(record)
    _agent_chunk(records)


@target
def syslog_native(data: bytes) -> None:
    """The receiver's C path (_syslog_native.c) against the Python reference on the same bytes: as
    one datagram and as a stream (octet counting or LF, decided by its first byte) cut at a fuzzed
    place, the same records, malformed counts, message lengths and framing state."""
    import datetime as dt

    from fleetlog.agent.sources.syslog_framing import FrameSplitter
    from fleetlog.agent.sources.syslog_native import StreamReader, datagram, native
    from fleetlog.agent.sources.syslog_records import frames_to_records
    if native is None:
        raise AssertionError("the C module is not built (setup.py build_ext)")
    given = Input(data)
    limit = given.int() % 200 + 1
    cut = given.int(2)
    now = dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC) if given.int() % 2 else \
        dt.datetime(2027, 1, 1, 0, 30, tzinfo=dt.UTC)
    stream = given.rest()
    assert datagram(stream, limit, 0, 1, now) == datagram(stream, limit, 0, 1, now, use_native=False)
    reader, splitter = StreamReader(limit), FrameSplitter(limit)
    ours, theirs = [], []
    for part in (stream[:cut], stream[cut:]):
        ours.append(reader.feed_records(part, sum(len(r.records) for r in ours), 1, now))
        theirs.append(frames_to_records(splitter.feed(part), sum(len(r.records) for r in theirs), 1, now))
    assert ours == theirs, (ours, theirs)
    assert (reader.pending(), bool(reader.broken), reader.end()) == \
        (splitter.pending(), bool(splitter.broken), splitter.end())


# -- agent: the OTLP receiver ---------------------------------------------------------------------

def _otlp(data: bytes, encoding: str) -> None:
    """A request body as an OTLP listener gets it: it decodes (or is an OtlpDecodeError), and its
    records map within their bounds onto the wire; the rejected are counted, never more than sent."""
    from fleetlog.agent.sources.otlp_map import OtlpDecodeError, decode_json, decode_protobuf, map_request
    given = Input(data)
    limit = given.int(2) % 2000 + 64     # small and large, so both the measured and the skipped check run
    max_records = given.int() % 20 + 1
    body = given.rest()
    try:
        request = decode_json(body) if encoding == "json" else decode_protobuf(body)
    except OtlpDecodeError:
        return
    mapped = map_request(request, limit, max_records, 0)
    sent = sum(len(scope.log_records) for resource in request.resource_logs for scope in resource.scope_logs)
    assert len(mapped.records) + sum(mapped.rejected.values()) == sent, (len(mapped.records), mapped.rejected, sent)
    assert len(mapped.records) <= max_records
    for record in mapped.records:
        _check_parsed(record.parsed)
        assert len(record.parsed.message.encode("utf-8", "surrogatepass")) <= limit or not record.flags
        assert 0 <= record.pid < 1 << 31
        fields = json.dumps(record.parsed.fields, ensure_ascii=False, separators=(",", ":"), default=str)
        assert len(fields.encode("utf-8", "surrogatepass")) <= limit, (len(fields), limit)   # else rejected
    _agent_chunk(mapped.records)
    assert not mapped.rejected or mapped.error_message()


@target
def otlp_protobuf(data: bytes) -> None:
    _otlp(data, "protobuf")


@target
def otlp_json(data: bytes) -> None:
    _otlp(data, "json")


# -- CLI: bundle verification ---------------------------------------------------------------------

def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


@target
def bundle_verify(data: bytes) -> None:
    """`fleetlog verify --bundle`: any file is a usage error or a verification verdict."""
    from fleetlog.common.errors import UsageError, VerificationError
    from fleetlog.common.verify_bundle import verify_bundle
    given = Input(data)
    if given.int() % 4 == 0:
        content = given.rest()                       # any bytes as the file
    else:
        from tests.fuzz.bundle_seed import seed_members
        members = dict(seed_members())
        for _ in range(given.int() % 3 + 1):           # change, drop or add members
            name = given.pick(sorted(members) + ["extra.pub", "digests.txt"])
            action = given.int() % 4
            if action == 3:                          # another JSON shape where an object belongs
                members[name] = json.dumps(given.pick([[], "s", 1, None, {"counts": [3]}, {"attestation": 5},
                                                       {"checkpoint": []}])).encode()
            elif action == 0:
                members.pop(name, None)
            elif action == 1:
                original = members.get(name, b"")
                at = given.int(2) % (len(original) + 1)
                members[name] = original[:at] + given.bytes(16) + original[at + given.int() % 8:]
            else:
                members[name] = given.bytes(200)
        content = _tar(members)
    path = _scratch("bundle.tar.gz")
    with open(path, "wb") as handle:
        handle.write(content)
    try:
        verify_bundle(path)
    except (UsageError, VerificationError) as exc:
        assert str(exc)


# -- the store: a block's payload ---------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _seed_block_payload() -> bytes:
    """The decompressed payload of a small valid block (two runs, a kept id, NULs and None)."""
    from fleetlog.collector.store import ROW_COLUMNS
    from fleetlog.collector.store.blocks import _zstd_decompress, encode_block
    rows = []
    for i, seq in enumerate((3, 4, 5, 9, 10)):
        row: list[Any] = [None] * len(ROW_COLUMNS)
        row[:] = [seq, 1 + i % 2, 100 + i, None if i else "ab" * 16, 1_700_000_000_000_000 + i, 1_700_000_000_000_001,
                  "web-1", "10.0.0.5", None, "default", "file:/var/log/x", "audit", "sshd" if i % 2 else None, 4242,
                  i % 8, f"req-{i}", "alice" if i else None, None, f"line {i} \x00 é", None, "general", i % 2,
                  bytes([seq]) * 32]
        rows.append(row)
    block = encode_block(rows, lambda seq: bytes([seq - 1]) * 32)
    return bytes(_zstd_decompress(block.data, max_output_size=1 << 20))


@target
def block_payload(data: bytes) -> None:
    """A partition file's block payload as someone with the file may have left it: decode_block and
    the reader's column-wise BlockColumns give the block or BlockError, never another exception,
    a hang or a huge allocation."""
    from fleetlog.collector.store.block_columns import BlockColumns
    from fleetlog.collector.store.blocks import BlockError, _zstd_compress, decode_block
    given = Input(data)
    if given.int() % 4 == 0:
        payload = given.rest()                                  # any bytes, compressed
    else:
        payload = _seed_block_payload()
        for _ in range(given.int() % 4 + 1):                    # splice fuzzed bytes into a valid one
            at = given.int(2) % (len(payload) + 1)
            payload = payload[:at] + given.bytes(24) + payload[at + given.int() % 16:]
    compressed = _zstd_compress(payload) if given.int() % 8 else given.rest()
    try:
        block = decode_block(compressed)
    except BlockError as exc:
        assert str(exc)
    else:
        assert len({len(row) for row in block.rows}) <= 1
        assert sum(run.end - run.start + 1 for run in block.runs) == len(block.rows)
    try:
        columns = BlockColumns(compressed)
        for name in ("message", "time", "user", "seq"):
            assert len(columns.column(name)) == columns.count
    except BlockError as exc:
        assert str(exc)
    try:        # a few events picked out of the sections (C), as a search keeping few does
        columns = BlockColumns(compressed)
        picked = sorted({given.int(2) % columns.count for _ in range(given.int() % 4 + 1)})
        assert len(columns.rows(picked)) == len(picked)
    except BlockError as exc:
        assert str(exc)


@target
def settings_bodies(data: bytes) -> None:
    """A settings API body (collector/settings/entries.py) as a peer sends it, for each kind: a
    UsageError (HTTP 400) or an entry from which the running configuration builds."""
    from fleetlog.collector.config import CollectorConfig
    from fleetlog.collector.settings import effective, entries
    from fleetlog.collector.store.settings_rows import SettingsRow
    from fleetlog.common.errors import UsageError
    kind, raw = data[:1], data[1:]
    try:
        body = entries.parse_body(raw)
        if kind == b"f":
            enabled, config = entries.forwarder("fuzz", body)
            row = SettingsRow("forwarders", "fuzz", json.dumps({**entries.plain(config), "enabled": enabled}),
                              0, 0, "fuzz", "api")
        elif kind == b"t":
            entry = entries.token(body, "0" * 64)
            row = SettingsRow("tokens", entry.name, json.dumps({"sha256": entry.sha256, "role": entry.role,
                                                                "namespaces": list(entry.namespaces)}), 0, 0, "f", "api")
        else:
            row = SettingsRow("namespaces", "fuzz", json.dumps(entries.plain(entries.namespace("fuzz", body))),
                              0, 0, "fuzz", "api")
    except UsageError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    effective.build(CollectorConfig(node_name="fuzz"), [row])   # what was accepted must build


def run_one(name: str, data: bytes) -> None:
    TARGETS[name](data)

