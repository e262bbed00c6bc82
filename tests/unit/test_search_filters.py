"""Every filter of contract §1 over the known dataset: the exact set of events it returns."""

from __future__ import annotations

import pytest

from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.query import QueryEngine
from fleetlog.common.errors import UsageError
from fleetlog.common.timefmt import parse_rfc3339_us
from tests.search_dataset import ALL, build_store, labels
from tests.unit.block_helpers import opened_blocks

NOW = parse_rfc3339_us("2025-12-02T09:00:00Z")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "events.db"
    build_store(path)
    return QueryEngine(str(path))


def find(engine: QueryEngine, **raw: str) -> set[str]:
    spec = build_filter_spec(raw, now=NOW)
    return labels([e for page in engine.search(spec) for e in page])


CASES = [
    ({}, ALL),
    # time
    ({"since": "2025-12-01T11:00:00Z"}, ALL - {"e01", "e02", "e09"}),
    ({"until": "2025-12-01T10:05:00Z"}, {"e01", "e02", "e09"}),
    ({"since": "2025-12-01", "until": "2025-12-02"}, {"e01", "e02", "e03", "e04", "e10", "e05"}),
    ({"since": "2025-12-01T11:00:00+01:00", "until": "2025-12-01T11:15:30Z"}, {"e01", "e02", "e03"}),
    ({"since": "1h"}, {"e06", "e07", "e08"}),           # relative to NOW = 2025-12-02 09:00
    ({"since": "2d", "until": "22h"}, {"e09", "e01", "e02"}),
    ({"date": "2025-12-01"}, {"e01", "e02", "e03", "e04", "e10"}),
    ({"date": "2025-12"}, ALL - {"e08", "e09"}),
    ({"date": "2025-12-01 1"}, {"e01", "e02", "e03", "e04", "e10"}),
    ({"date": "2025-12-01 11"}, {"e03", "e04"}),
    ({"date": "2025-12-01 14:3"}, {"e10"}),
    ({"date": "2025-12-31 23:59:59.999"}, {"e07"}),
    ({"date": "2026"}, {"e08"}),
    # levels
    ({"min_level": "error"}, {"e03", "e05", "e08", "e10"}),
    ({"min_level": "crit"}, {"e05", "e08"}),
    ({"level": "info,debug"}, {"e01", "e04", "e07", "e09"}),
    ({"level": "WARN"}, {"e02"}),
    # request id
    ({"request_id": "req-101"}, {"e03", "e08"}),
    ({"request_id": "req-10*"}, {"e01", "e02", "e03", "e07", "e08"}),
    ({"request_id": "req-1"}, set()),
    ({"request_id": "REQ-300"}, {"e06"}),
    # user
    ({"user": "bob"}, {"e03", "e08"}),
    ({"user": "bob*"}, {"e03", "e05", "e08"}),
    ({"user": "alice, carol@x,nobody"}, {"e01", "e02", "e06"}),
    ({"user": "*@x"}, {"e06"}),
    # host: name or IP, wildcard, list
    ({"host": "web-1"}, {"e01", "e02", "e06", "e09"}),
    ({"host": "192.0.2.10"}, {"e04", "e05", "e10"}),
    ({"host": "web-*"}, ALL - {"e04", "e05", "e10"}),
    ({"host": "db-1,192.0.2.2"}, {"e03", "e04", "e05", "e07", "e08", "e10"}),
    ({"host": "192.0.2.*"}, ALL),
    ({"host": "web"}, set()),
    # message keywords, phrases, punctuation taken literally
    ({"message": "payment"}, {"e03"}),
    ({"message": "PASSWORD"}, {"e03", "e08"}),
    ({"message": "user deleted"}, {"e10"}),
    ({"message": "user"}, {"e01", "e06", "e10"}),
    ({"message": "abc-123"}, {"e02"}),
    ({"message": "abc 123"}, {"e02", "e04"}),
    ({"message": '"abc 123"'}, {"e04"}),
    ({"message": "user@x"}, {"e06"}),
    ({"message": '"card declined" payment'}, {"e03"}),
    ({"message": '"declined card"'}, set()),
    ({"message": "check*"}, {"e04"}),
    ({"message": "100%"}, {"e07"}),
    ({"message": "NEAR OR"}, set()),                  # FTS operators are plain words here
    ({"message": "items=3"}, {"e02"}),
    # regex
    ({"message_regex": r"^e0[1-3] "}, {"e01", "e02", "e03"}),
    ({"message_regex": r"\d+s$"}, {"e09"}),
    ({"message_regex": "(?i)password"}, {"e03", "e08"}),
    # exact / wildcard / list on the other columns
    ({"log_type": "audit,security"}, {"e07", "e08", "e10"}),
    ({"source": "file:/var/log/postgres.log"}, {"e04", "e05", "e10"}),
    ({"source": "*shop*"}, {"e01", "e02", "e03", "e06", "e08", "e09"}),
    ({"namespace": "payments"}, {"e04", "e05", "e10"}),
    ({"namespace": "stag*"}, {"e09"}),
    ({"app": "ops"}, {"e07"}),
    ({"action": "user.*,login"}, {"e01", "e10"}),
    ({"action": "password.reset"}, {"e08"}),
    # --where: % only; _ is literal; ; separates
    ({"where": "time=% 11:%"}, {"e03", "e04"}),
    ({"where": "action=system%"}, {"e07"}),
    ({"where": "user=bob_x"}, {"e05"}),
    ({"where": "user=bo_"}, set()),
    ({"where": "host=web-%; level=info"}, {"e01", "e07", "e09"}),
    ({"where": "message=%100\\%%"}, set()),            # backslash is literal too
    ({"where": "message=%100%%"}, {"e07"}),
    ({"where": "fields=%api_key%"}, {"e10"}),
    # AND of several
    ({"host": "web-*", "min_level": "warning", "since": "2025-12-01"}, {"e02", "e03", "e08"}),
    ({"user": "bob", "message": "password"}, {"e03", "e08"}),
]


@pytest.mark.parametrize("raw,expected", CASES, ids=[repr(raw) for raw, _ in CASES])
def test_filter_returns_exact_set(engine, raw, expected):
    assert find(engine, **raw) == expected


def test_order_and_limit(engine):
    spec = build_filter_spec({})
    newest = [e["message"][:3] for page in engine.search(spec, order="desc", limit=3) for e in page]
    assert newest == ["e08", "e07", "e06"]
    oldest = [e["message"][:3] for page in engine.search(spec, order="asc", limit=2) for e in page]
    assert oldest == ["e09", "e01"]


def test_namespace_scope_limits_every_filter(engine):
    from dataclasses import replace
    spec = replace(build_filter_spec({"min_level": "error"}), allowed_namespaces=("payments",))
    assert labels([e for page in engine.search(spec) for e in page]) == {"e05", "e10"}
    spec = replace(build_filter_spec({}), allowed_namespaces=())
    assert labels([e for page in engine.search(spec) for e in page]) == set()


@pytest.mark.parametrize("raw,message", [
    ({"min_level": "loud"}, "--min-level: unknown level 'loud'"),
    ({"level": "info,chatty"}, "--level: unknown level 'chatty'"),
    ({"message_regex": "(unclosed"}, "--message-regex: invalid regular expression '(unclosed'"),
    ({"since": "yesterday"}, "--since: cannot read 'yesterday' as a time"),
    ({"until": "2025-13-01"}, "--until: cannot read '2025-13-01' as a time"),
    ({"date": "Dec 2025"}, "--date: 'Dec 2025' is not a date prefix"),
    ({"date": "2025-02-30"}, "--date: '2025-02-30'"),
    ({"where": "colour=red"}, "--where: unknown field 'colour'"),
    ({"where": "user"}, "--where: 'user' is not field=pattern"),
    ({"message": 'say "hi'}, "--message: unbalanced double quote"),
    ({"since": "2025-12-02", "until": "2025-12-01"}, "--since is later than --until"),
])
def test_bad_input_is_a_usage_error(raw, message):
    with pytest.raises(UsageError) as caught:
        build_filter_spec(raw)
    assert str(caught.value).startswith(message)


def _decoded(engine: QueryEngine, monkeypatch, **raw: str) -> tuple[list[dict], list]:
    """(events found, headers of the blocks the search decoded)."""
    opened = opened_blocks(monkeypatch)
    try:
        found = [e for page in engine.search(build_filter_spec(raw, now=NOW), order="desc", limit=1000) for e in page]
    finally:
        monkeypatch.undo()
    return found, opened


@pytest.mark.parametrize("raw", [{"since": "2025-12-01", "until": "2025-12-02"}, {"request_id": "req-101"},
                                 {"user": "bob"}, {"host": "web-1"}, {"host": "192.0.2.10"}, {"message": "payment"},
                                 {"message": '"card declined"'}, {"app": "ops"}, {"log_type": "audit,security"},
                                 {"namespace": "stag*"}, {"min_level": "crit"}])
def test_selective_filters_decode_only_blocks_holding_a_match(engine, monkeypatch, raw):
    """What the row model's indexes did, the skip columns, summaries and blooms do: every block a
    selective search decodes holds one of its results."""
    found, opened = _decoded(engine, monkeypatch, **raw)
    assert found and opened
    seqs = [e["seq"] for e in found]
    for block in opened:
        assert any(block.min_seq <= seq <= block.max_seq for seq in seqs), (raw, block)


def test_limited_searches_in_time_order(engine):
    for raw, expected in [({"host": "web-1"}, ["e06", "e02", "e01", "e09"]),
                          ({"message": "user"}, ["e06", "e10", "e01"]),
                          ({"user": "bob*", "request_id": "req-*"}, ["e08", "e05", "e03"]),
                          ({"message": "abc-123", "host": "web-*"}, ["e02"])]:
        for limit in (10, 2):
            got = [e["message"][:3] for page in engine.search(build_filter_spec(raw), order="desc", limit=limit)
                   for e in page]
            assert got == expected[:limit], (raw, got)
