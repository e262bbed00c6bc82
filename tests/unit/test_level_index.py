"""Level filters of warning and worse skip every block whose most severe level is milder (the
block's min_level skip column: what the partial index events_severe was to the row model), and
get the same results as reading every block."""

from __future__ import annotations

import pytest

from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore
from tests.unit.block_helpers import all_headers, opened_blocks
from tests.unit.store_helpers import incoming

T0 = 1_764_547_200_000_000
# host -> level of each of its batches: quiet hosts never log worse than info.
LEVELS = {"quiet-1": [6, 7, 6], "quiet-2": [5, 6, 6], "web-1": [6, 3, 6], "web-2": [4, 6, 2], "db-1": [0, 6, 4]}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("levels") / "events.db"
    store = SqliteStore(str(path), "normal", collector="c1")
    for n in range(3):
        store.store_batch([incoming(host, "app.log", list(range(n * 20 + 1, n * 20 + 21)), level=levels[n],
                                    time_us=[T0 + n * 60_000_000 + p for p in range(20)],
                                    messages=[f"{host} {n} {p}" for p in range(20)])
                           for host, levels in LEVELS.items()], T0)
    store.close()
    return str(path)


def _search(store_path: str, monkeypatch, raw: dict) -> tuple[list, list]:
    """(messages found, newest first; blocks decoded)."""
    opened = opened_blocks(monkeypatch)
    reader = SqliteReader(store_path)
    try:
        found = [row[16] for page in reader.search(build_filter_spec(raw), order="desc", limit=1000) for row in page]
    finally:
        reader.close()
        monkeypatch.undo()
    return found, opened


@pytest.mark.parametrize("raw,worst", [({"min_level": "warning"}, 4), ({"min_level": "error"}, 3),
                                       ({"min_level": "emerg"}, 0), ({"level": "crit,warning"}, 4),
                                       ({"level": "info", "min_level": "error"}, 3)])
def test_severe_level_filters_open_only_blocks_that_hold_such_a_level(store_path, monkeypatch, raw, worst):
    _, opened = _search(store_path, monkeypatch, raw)
    qualifying = {b.id for b in all_headers(store_path) if b.min_level <= worst}
    assert opened and {b.id for b in opened} <= qualifying
    assert all(b.min_level <= worst for b in opened)
    assert not any(b.host.startswith("quiet-") for b in opened)


@pytest.mark.parametrize("raw", [{"min_level": "debug"}, {"level": "info,error"}, {"level": "debug"}])
def test_other_level_filters_open_blocks_of_every_host(store_path, monkeypatch, raw):
    _, opened = _search(store_path, monkeypatch, raw)
    assert {b.host for b in opened} == set(LEVELS)


def test_skipping_changes_no_result(store_path, monkeypatch):
    everything, _ = _search(store_path, monkeypatch, {})
    level_of = {f"{host} {n} {p}": LEVELS[host][n] for host in LEVELS for n in range(3) for p in range(20)}
    for raw, wanted in (({"min_level": "warning"}, lambda lv: lv <= 4), ({"level": "warning"}, lambda lv: lv == 4),
                        ({"min_level": "error", "host": "web-*"}, lambda lv: lv <= 3)):
        found, _ = _search(store_path, monkeypatch, raw)
        expected = [m for m in everything if wanted(level_of[m]) and (not raw.get("host") or m.startswith("web-"))]
        assert found == expected and expected, raw
