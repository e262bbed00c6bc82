"""Parsers and per-source filters: the shapes of lines real software writes, the level names of
other schemes, time formats, and min_level/include/exclude as the batcher applies them."""

from __future__ import annotations

import datetime as dt

import pytest

from fleetlog.agent.batcher import build_chunk
from fleetlog.agent.parse import _SYSLOG, _syslog_to_us, make_parser, parse_auto
from fleetlog.agent.sources.base import Record, SourceBatch
from fleetlog.common.event_filter import EventFilter, FieldPattern
from fleetlog.common.timefmt import format_us


@pytest.mark.parametrize("line, time, level, message", [
    ("2025-12-02T14:30:45.5+02:00 WARN disk 91%", "2025-12-02T12:30:45.500000Z", 4, "disk 91%"),
    ("2025-12-02 14:30:45,123 [ERROR] pool exhausted", "2025-12-02T14:30:45.123000Z", 3, "pool exhausted"),
    ("2025/12/02 14:30:45 [crit] 77#0: upstream gone", "2025-12-02T14:30:45.000000Z", 2, "77#0: upstream gone"),
    ("[2025-12-02 14:30:45] emerg: halt", "2025-12-02T14:30:45.000000Z", 0, "halt"),
    ("1764685845.25 informational: epoch seconds", "2025-12-02T14:30:45.250000Z", 6, "epoch seconds"),
    ("1764685845250 trace epoch millis", "2025-12-02T14:30:45.250000Z", 7, "epoch millis"),
    ("FATAL no time at all", None, 0, "no time at all"),
    ("404 is not a time", None, None, "404 is not a time"),
    ("just words", None, None, "just words"),
])
def test_auto_text_shapes(line, time, level, message):
    parsed = parse_auto(line)
    assert (format_us(parsed.time_us) if parsed.time_us is not None else None) == time
    assert parsed.level == level
    assert parsed.message == message


@pytest.mark.parametrize("name, level", [
    ("emergency", 0), ("emerg", 0), ("fatal", 0), ("PANIC", 0), ("alert", 1), ("crit", 2), ("critical", 2),
    ("err", 3), ("Error", 3), ("warn", 4), ("warning", 4), ("notice", 5), ("info", 6), ("informational", 6),
    ("information", 6), ("debug", 7), ("TRACE", 7), ("3", 3), (5, 5),
])
def test_level_names_of_other_schemes(name, level):
    assert parse_auto(f'{{"level": {name!r}, "msg": "m"}}'.replace("'", '"')).level == level


def test_json_keeps_unknown_keys_in_fields_and_maps_aliases():
    p = parse_auto('{"timestamp": 1764685845123456, "lvl": "warn", "message": "m", "req_id": "r1", '
                   '"user_name": "ann", "action": "user.create", "nested": {"a": 1}, "n": 3}')
    assert format_us(p.time_us) == "2025-12-02T14:30:45.123456Z"
    assert (p.level, p.message, p.request_id, p.user, p.action) == (4, "m", "r1", "ann", "user.create")
    assert p.fields == {"nested": {"a": 1}, "n": 3}


def test_json_parser_keeps_a_non_json_line_whole():
    p = make_parser("json")("not json {")
    assert p.message == "not json {" and p.fields == {"parse_error": "not a JSON object"}


def test_regex_named_groups_and_extra_groups_to_fields():
    parse = make_parser("regex", r"^(?P<ts>\S+ \S+) (?P<severity>\w+) \[(?P<thread>[^\]]+)\] (?P<msg>.*)$")
    p = parse("2025-12-02 14:30:45 warning [worker-3] queue slow")
    assert format_us(p.time_us) == "2025-12-02T14:30:45.000000Z"
    assert (p.level, p.message, p.fields) == (4, "queue slow", {"thread": "worker-3"})


def test_plain_parser_takes_nothing_out():
    p = make_parser("plain")("2025-12-02T14:30:45Z ERROR user=bob")
    assert (p.time_us, p.level, p.message, p.user, p.fields) == (None, None, "2025-12-02T14:30:45Z ERROR user=bob", "", None)


def test_syslog_time_has_no_year_and_is_never_in_the_future():
    match = _SYSLOG.match("Dec 31 23:59:59 host app: x")
    january = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert format_us(_syslog_to_us(match, january)) == "2025-12-31T23:59:59.000000Z"
    match = _SYSLOG.match("Jan  1 00:00:01 host app: x")
    assert format_us(_syslog_to_us(match, january)) == "2026-01-01T00:00:01.000000Z"
    parsed = parse_auto("Nov  3 10:00:00 host sshd[1]: Accepted")
    assert parsed.time_us is not None and parsed.time_us <= dt.datetime.now(dt.UTC).timestamp() * 1e6 + 86400e6


def _batch(records, min_level=7, include=(), exclude=()):
    return SourceBatch(source="file:/x", source_key="k", log_type="application", records=records, checkpoint=None,
                       min_level=min_level, filters=EventFilter(include, exclude) or None)


def test_min_level_include_exclude_as_the_batcher_applies_them():
    lines = [parse_auto(f'{{"level": "{lv}", "user": "{u}", "action": "{a}", "msg": "{lv} {u} {a}"}}')
             for lv in ("debug", "info", "error") for u in ("admin-1", "svc-x") for a in ("login", "debug.dump")]
    records = [Record(i, p, "app", 0, 0, 1) for i, p in enumerate(lines)]
    chunk, dropped = build_chunk(_batch(records, min_level=6,
                                        include=[FieldPattern("user", "admin*")],
                                        exclude=[FieldPattern("action", "debug*")]), "default")
    assert list(chunk.message) == ["info admin-1 login", "error admin-1 login"]
    assert dropped == 10
    # No level in the line: info by default, so min_level notice drops it.
    chunk, dropped = build_chunk(_batch([Record(0, parse_auto("no level"), "", 0, 0, 1)], min_level=5), "default")
    assert len(chunk.position) == 0 and dropped == 1


def test_event_filter_wildcards_on_any_field():
    f = EventFilter([FieldPattern("message", "*timeout*")], [FieldPattern("app", "nginx")])
    assert f.keep({"message": "upstream timeout after 3s", "app": "haproxy"}.get)
    assert not f.keep({"message": "upstream timeout", "app": "nginx"}.get)
    assert not f.keep({"message": "ok", "app": "haproxy"}.get)
