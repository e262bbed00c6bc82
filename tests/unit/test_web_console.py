"""The console's pieces without a server: `[web]` config rules, query-string parameters, and
keyset paging over a real SQLite store (ties within one microsecond included)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.query import QueryEngine
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.collector.web.queries import next_token, parse_next, raw_filters
from fleetlog.common.config import build_config
from fleetlog.common.errors import ConfigError, UsageError
from tests.unit.store_helpers import incoming


def config(data: dict) -> CollectorConfig:
    return build_config(CollectorConfig, {"data_dir": "/tmp/x", **data}, "collector.toml")


def test_web_is_off_unless_configured_and_loopback_only_without_tls():
    assert config({}).web is None
    assert config({"web": {}}).web.listen == "127.0.0.1:8433"
    with pytest.raises(ConfigError, match=r"^collector.toml: web.listen: refusing to serve the console on "
                                          r"0.0.0.0:8433 without TLS"):
        config({"web": {"listen": "0.0.0.0:8433"}, "tokens_file": "/etc/fleetlog/tokens.toml"})
    assert config({"web": {"listen": "0.0.0.0:8433"}, "insecure": True}).web.listen == "0.0.0.0:8433"
    assert config({"web": {"listen": "[::1]:8433"}}).web.listen == "[::1]:8433"
    with pytest.raises(ConfigError, match="web.listen: expected HOST:PORT, got '8433'"):
        config({"web": {"listen": "8433"}})
    with pytest.raises(ConfigError, match=r"web.sessions: unknown key"):
        config({"web": {"sessions": 1}})
    with pytest.raises(ConfigError, match="web.session_lifetime: must be between 1m and 30d"):
        config({"web": {"session_lifetime": "1s"}})


def test_query_parameters_are_the_cli_filters():
    assert raw_filters({"user": "alice", "min_level": " warning ", "host": ""}) == {"user": "alice",
                                                                                   "min_level": "warning"}
    with pytest.raises(UsageError, match="unknown query parameter 'min-level'"):
        raw_filters({"min-level": "error"})
    assert parse_next("1764583200000000.42") == (1764583200000000, 42, "")
    # A cluster's events carry their chain (the collector that stored them); so does the token.
    token = next_token({"time": "2025-12-01T10:00:00.000000Z", "seq": 42, "chain": "collector-2"})
    assert token == "1764583200000000.42.collector-2"
    assert parse_next(token) == (1764583200000000, 42, "collector-2")
    with pytest.raises(UsageError, match="_next"):
        parse_next("42")


def test_keyset_pages_cover_every_event_once_even_with_equal_times(tmp_path):
    path = tmp_path / "events.db"
    store = SqliteStore(path)
    same = 1_700_000_000_000_000
    store.store_batch([incoming("web-1", "a", list(range(1, 8)), time_us=[same] * 4 + [same + 1, same + 2, same + 2])],
                      same)
    store.store_batch([incoming("web-2", "b", list(range(1, 4)), time_us=[same, same + 1, same + 3])], same)
    engine = QueryEngine(str(path))
    spec = build_filter_spec({})
    for order, key in (("desc", "before_key"), ("asc", "after_key")):
        everything = [e["seq"] for page in engine.search(spec, order=order, limit=100) for e in page]
        seen, page_spec = [], spec
        while True:
            page = next(engine.search(page_spec, order=order, limit=3, page_size=3), [])
            seen += [e["seq"] for e in page]
            if len(page) < 3:
                break
            page_spec = replace(spec, **{key: parse_next(next_token(page[-1]))})
        assert seen == everything and len(seen) == 10
    store.close()
