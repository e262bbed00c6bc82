"""On PostgreSQL too (issue 27 items 2 and 3): a reader's search stops at statement_timeout
([storage] query_timeout) with the clear error, other statements of the reader are not bounded,
and no pattern the user typed is evaluated on rows outside the caller's namespaces."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest

from fleetlog.collector.filters import FilterSpec, build_filter_spec
from fleetlog.collector.query import QueryEngine
from fleetlog.collector.store.postgres import PostgresStore
from fleetlog.collector.store.postgres_reader import PostgresReader
from fleetlog.common.errors import QueryTimeout
from tests.unit.store_helpers import incoming

DAY0 = 1_764_547_200_000_000          # 2025-12-01 00:00 UTC
TIMEOUT_MESSAGE = ("the query ran longer than 0.3 s and was stopped; "
                   "narrow it with --since/--until, --host or --namespace")


@pytest.fixture
def dsn(pg_dsn):
    store = PostgresStore(pg_dsn, "c1")
    try:
        store.store_batch([incoming("web-1", "app.log", [1, 2, 3], namespace="default",
                                    time_us=[DAY0 + p for p in (1, 2, 3)], messages=["a", "b", "aaaa!"]),
                           incoming("pay-1", "pay.log", [1], namespace="payments", time_us=[DAY0 + 4],
                                    messages=["card declined"])], DAY0)
    finally:
        store.close()
    return pg_dsn


def test_a_search_past_statement_timeout_is_stopped_with_the_clear_error(dsn):
    """Another session holds the events table locked: the reader's statements wait, and
    statement_timeout ends each of them (search, chart, time span, filtered follow read)."""
    reader = PostgresReader(dsn, query_timeout=0.3)
    spec = build_filter_spec({"message_regex": "a+"})
    try:
        with psycopg.connect(dsn) as locker:
            locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(QueryTimeout) as caught:
                list(reader.search(spec))
            assert str(caught.value) == TIMEOUT_MESSAGE
            for call in (lambda: reader.histogram(spec, DAY0, 1_000_000, 10), lambda: reader.time_span(spec),
                         lambda: reader.read_after({}, spec)):
                with pytest.raises(QueryTimeout, match="^the query ran longer than 0.3 s"):
                    call()
        # The bound was local to those transactions: the connection has none, and answers.
        assert reader.conn.execute("SHOW statement_timeout").fetchone()[0] == "0"
        engine = QueryEngine(lambda: reader)
        assert sorted(e["message"] for page in engine.search(spec) for e in page) == ["a", "aaaa!", "card declined"]
    finally:
        reader.close()


def test_a_user_pattern_is_never_evaluated_outside_the_callers_namespaces(dsn):
    """A pattern PostgreSQL refuses when it evaluates it (unbalanced parenthesis): scoped to a
    namespace with no rows, the search must end empty, not fail on the other namespaces' rows."""
    reader = PostgresReader(dsn)
    try:
        for hostile in (FilterSpec(message_regex="("), FilterSpec(message_regex="(", keywords=("a",))):
            spec = replace(hostile, allowed_namespaces=("nobody",))
            assert [r for page in reader.search(spec) for r in page] == []
            assert reader.histogram(spec, DAY0, 1_000_000, 10) == []
            assert reader.time_span(spec) is None
        # In scope, the same pattern is evaluated (and refused): the scope is what kept it away.
        spec = replace(FilterSpec(message_regex="("), allowed_namespaces=("default",))
        with pytest.raises(Exception, match="regular expression"):
            list(reader.search(spec))
    finally:
        reader.close()
