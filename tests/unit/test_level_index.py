"""Level filters of warning and worse walk the small partial index events_severe, and get the
same results as without it."""

from __future__ import annotations

import pytest

from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.query import QueryEngine
from fleetlog.collector.store.sqlite_query import compile_where
from tests.search_dataset import build_store, labels
from tests.unit.store_helpers import partition_conn, partition_files


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("levels") / "events.db"
    build_store(path)
    return QueryEngine(str(path))


def _first_step(engine: QueryEngine, **raw: str) -> str:
    where, params = compile_where(build_filter_spec(raw))
    plan = partition_conn(engine._reader().path).execute(
        f"EXPLAIN QUERY PLAN SELECT seq FROM events WHERE {where} ORDER BY time DESC, seq DESC LIMIT 1000", params)
    return next(plan)[3]


@pytest.mark.parametrize("raw", [{"min_level": "warning"}, {"min_level": "error"}, {"min_level": "emerg"},
                                 {"level": "crit,warning"}, {"level": "info", "min_level": "error"}])
def test_severe_level_filters_walk_the_partial_index(engine, raw):
    assert _first_step(engine, **raw) == "SCAN events USING INDEX events_severe"


@pytest.mark.parametrize("raw", [{"min_level": "notice"}, {"level": "info,error"}, {"level": "debug"}])
def test_other_level_filters_walk_the_time_index(engine, raw):
    assert _first_step(engine, **raw) == "SCAN events USING INDEX events_time"


def test_the_index_changes_no_result(engine):
    for raw in ({"min_level": "warning"}, {"level": "warning"}, {"min_level": "error", "host": "web-*"}):
        spec = build_filter_spec(raw)
        with_index = labels([e for page in engine.search(spec) for e in page])
        where, params = compile_where(spec)
        plain = where.replace(" AND level <= 4", "")
        assert plain != where
        main = engine._reader().path
        rows = [row for part in partition_files(main)
                for row in partition_conn(main, part).execute(f"SELECT message FROM events WHERE {plain}", params)]
        assert with_index == {message[:3] for (message,) in rows}, raw
