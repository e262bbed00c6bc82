"""What a reader's filters cannot do to the collector (issue 27 items 2 and 3): a regular
expression is matched in linear time and its length is capped, every query of a search stops at
the store's deadline with a clear error, and no pattern the user typed runs on rows outside the
caller's namespaces."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

import pytest

from fleetlog.collector.filters import MAX_REGEX_BYTES, build_filter_spec
from fleetlog.collector.query import QueryEngine
from fleetlog.collector.store import row_match, sqlite_deadline
from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore
from fleetlog.common.errors import QueryTimeout, UsageError
from tests.search_dataset import EVENTS, build_store, labels
from tests.unit.store_helpers import incoming

NAMESPACE_OF = {f"{e[0]} {e[10]}": e[7] for e in EVENTS}   # stored message -> namespace


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "events.db"
    build_store(path)
    return str(path)


def test_a_pattern_longer_than_the_cap_is_refused_with_its_length():
    build_filter_spec({"message_regex": "a" * MAX_REGEX_BYTES})
    with pytest.raises(UsageError) as caught:
        build_filter_spec({"message_regex": "a" * (MAX_REGEX_BYTES + 1)})
    assert str(caught.value) == (f"--message-regex: the pattern is {MAX_REGEX_BYTES + 1} bytes long; "
                                 f"at most {MAX_REGEX_BYTES} are accepted")
    with pytest.raises(UsageError, match=r"^--where: 5000 characters long; at most 4096 are accepted$"):
        build_filter_spec({"where": "message=" + "%" * 4992})


def test_a_backreference_is_refused_as_re2_syntax():
    with pytest.raises(UsageError) as caught:
        build_filter_spec({"message_regex": r"(a)\1"})
    assert str(caught.value).startswith(r"--message-regex: invalid regular expression '(a)\\1': ")
    assert str(caught.value).endswith("(RE2 syntax: no backreferences or lookaround)")


def test_a_catastrophic_pattern_matches_in_linear_time(tmp_path):
    """`(a+)+$` against 40 a's and a `!`: Python's re would backtrack for ever holding the GIL
    (the whole collector frozen); run in a child so a regression fails instead of hanging."""
    path = tmp_path / "events.db"
    store = SqliteStore(str(path), "normal", collector="c1")
    store.store_batch([incoming("web-1", "app.log", [1, 2], messages=["a" * 40 + "!", "aaaa"])],
                      1_700_000_000_000_000)
    store.close()
    child = (
        "import sys\n"
        "from fleetlog.collector.filters import build_filter_spec\n"
        "from fleetlog.collector.query import QueryEngine\n"
        "engine = QueryEngine(sys.argv[1])\n"
        "spec = build_filter_spec({'message_regex': '(a+)+$'})\n"
        "print(sorted(e['message'] for page in engine.search(spec) for e in page))\n")
    done = subprocess.run([sys.executable, "-c", child, str(path)], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['aaaa']"


def _slow_regex(monkeypatch, seconds_per_row: float, seen: list[str] | None = None) -> None:
    """The store's regexp, taking `seconds_per_row` per row and noting each text it is given."""
    class Slow:
        def found_in(self, text: str) -> bool:
            if seen is not None:
                seen.append(text)
            time.sleep(seconds_per_row)
            return True
    monkeypatch.setattr(row_match, "compile_message_regex", lambda pattern: Slow())


def _engine(path: str, query_timeout: float | None = None) -> tuple[QueryEngine, SqliteReader]:
    reader = SqliteReader(path, query_timeout=query_timeout)
    return QueryEngine(lambda: reader), reader


def test_a_query_past_the_deadline_stops_with_a_clear_error(store_path, monkeypatch):
    monkeypatch.setattr(sqlite_deadline, "CHECK_EVERY", 10)
    _slow_regex(monkeypatch, 0.05)
    engine, reader = _engine(store_path, query_timeout=0.2)
    try:
        spec = build_filter_spec({"message_regex": "x"})
        with pytest.raises(QueryTimeout) as caught:
            list(engine.search(spec))
        assert str(caught.value) == ("the query ran longer than 0.2 s and was stopped; "
                                     "narrow it with --since/--until, --host or --namespace")
        with pytest.raises(QueryTimeout):
            reader.histogram(spec, 0, 10**18, 1)
        # The same reader answers the next query in full: the deadline was disarmed.
        assert labels([e for page in engine.search(build_filter_spec({})) for e in page]) == {e[0] for e in EVENTS}
    finally:
        reader.close()


def test_the_deadline_bounds_work_between_pages_not_a_slow_consumer(store_path, monkeypatch):
    """An export that takes its time with each page is never cut: only the store's own work for
    the next page counts against the deadline."""
    monkeypatch.setattr(sqlite_deadline, "CHECK_EVERY", 10)
    engine, reader = _engine(store_path, query_timeout=0.1)
    try:
        got = []
        for page in engine.search(build_filter_spec({}), page_size=2):
            got += page
            time.sleep(0.15)   # the consumer, slower than the deadline for each page
        assert len(got) == len(EVENTS)
    finally:
        reader.close()


@pytest.mark.parametrize("extra", [{}, {"where": "message=%e%"}, {"message": "abc 123"}])
def test_the_regex_never_runs_on_rows_outside_the_callers_namespaces(store_path, monkeypatch, extra):
    seen: list[str] = []
    _slow_regex(monkeypatch, 0, seen)
    engine, reader = _engine(store_path)
    try:
        spec = replace(build_filter_spec({"message_regex": "x", **extra}), allowed_namespaces=("payments",))
        rows = [e for page in engine.search(spec, order="desc", limit=100) for e in page]
        engine.histogram(spec, 0, 10**18, 1)
        engine.time_span(spec)
        assert seen, "the regex ran on no row at all"
        assert [text for text in seen if NAMESPACE_OF[text] != "payments"] == []
        assert {e["namespace"] for e in rows} <= {"payments"}
        if not extra:
            assert labels(rows) == {"e04", "e05", "e10"}
    finally:
        reader.close()
