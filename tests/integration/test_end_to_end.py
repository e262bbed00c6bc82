"""The walking skeleton, end to end: a file on one node -> agent -> gRPC -> collector -> SQLite
-> `fleetlog search`, with real processes."""

from __future__ import annotations

import collections

from tests.harness import run_cli, search_json, wait_for, write_lines


def _lines(count: int) -> list[str]:
    return [f"2025-12-02T14:30:45.{i:06d}Z INFO req=r{i % 97:05d} user=user{i % 13}@example.com "
            f"Authentication SUCCESS via LDAP seq={i:09d}" for i in range(count)]


def test_ten_thousand_lines_arrive_exactly_once(cluster, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_lines(logs / "app.log", _lines(6000))
    collector = cluster.collector()
    agent = cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(logs / "*.log")]}])
    write_lines(logs / "app.log", _lines(10000)[6000:])  # the rest arrives while the agent tails

    wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total", {"host": "web-1"}) >= 10000,
             60, "10,000 events stored")
    events = search_json(collector, "--host", "web-1")
    assert len(events) == 10000
    seqs = collections.Counter(e["message"].rsplit("seq=", 1)[1] for e in events)
    assert set(seqs) == {f"{i:09d}" for i in range(10000)}
    assert max(seqs.values()) == 1
    assert len({e["id"] for e in events}) == 10000

    first = next(e for e in events if e["message"].endswith("seq=000000042"))
    assert first["host"] == "web-1" and first["host_ip"] == "127.0.0.1"
    assert first["collector"] == "collector-1"
    assert first["time"] == "2025-12-02T14:30:45.000042Z"
    assert first["level"] == "info"
    assert first["request_id"] == "r00042" and first["user"] == "user3@example.com"
    assert first["message"] == "req=r00042 user=user3@example.com Authentication SUCCESS via LDAP seq=000000042"
    assert first["fields"] == {"seq": "000000042"}
    assert first["source"] == f"file:{logs / 'app.log'}"
    assert first["namespace"] == "default" and first["log_type"] == "application" and first["tier"] == "general"
    assert agent.metric("fleetlog_agent_events_acked_total") == 10000


def test_table_output_and_bad_filter(cluster):
    collector = cluster.collector()
    result = run_cli("--collector", collector.address, "search", "--limit", "5")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["TIME", "LEVEL", "HOST", "REQUEST_ID", "USER", "MESSAGE"]
    assert "collector collector-1" in result.stdout  # the start event is there

    bad = run_cli("search", "--min-level", "loud", "--collector", collector.address)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("fleetlog search: --min-level: unknown level 'loud' "
                                  "(expected one of emergency, alert, critical, error, warning, notice, info, debug)")


def test_unreachable_collector_is_one_line_exit_1(tmp_path):
    from tests.harness import free_port
    result = run_cli("--collector", f"127.0.0.1:{free_port()}", "status", timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("fleetlog status: cannot reach the collector at 127.0.0.1:")
    assert "Traceback" not in result.stderr
