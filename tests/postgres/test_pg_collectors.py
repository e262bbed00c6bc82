"""Two collectors sharing one PostgreSQL database, with real agents: every collector answers for
the whole cluster (search, trace, status), and an agent failing over after kill -9 of its
collector mid-stream loses and duplicates nothing."""

from __future__ import annotations

import json

from tests.harness import Cluster, run_cli, search_json, wait_for, write_lines


def _pg(dsn: str) -> dict:
    return {"storage": {"backend": "postgresql", "dsn": dsn}}


def test_any_collector_answers_for_the_whole_cluster(tmp_path, pg_dsn):
    cluster = Cluster(tmp_path)
    try:
        a = cluster.collector("col-a", **_pg(pg_dsn))
        b = cluster.collector("col-b", **_pg(pg_dsn))
        for name, collector in (("web-1", a), ("web-2", b)):
            log = tmp_path / f"{name}.log"
            write_lines(log, [json.dumps({"msg": f"{name} step {i}", "request_id": "req-42" if i % 2 else f"r{i}",
                                          "level": "info"}) for i in range(10)])
            cluster.agent(name, [collector], [{"type": "file", "paths": [str(log)]}])
        for collector in (a, b):
            wait_for(lambda c=collector: len(search_json(c, "--log-type", "application")) == 20, timeout=60,
                     what=f"20 events through {collector.config['node_name']}")
        trace = run_cli("--collector", b.address, "trace", "req-42", "--format", "json")
        assert trace.returncode == 0, trace.stderr
        steps = [json.loads(line) for line in trace.stdout.splitlines()]
        assert sorted((e["host"], e["message"]) for e in steps) == sorted(
            (h, f"{h} step {i}") for h in ("web-1", "web-2") for i in range(1, 10, 2))
        assert {e["collector"] for e in steps} == {"col-a", "col-b"}

        def cluster_status() -> dict:
            result = run_cli("--collector", a.address, "status", "--format", "json")
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)
        status = wait_for(lambda: (s := cluster_status()) and len(s.get("nodes", [])) == 2 and s,
                          timeout=30, what="both nodes in the status")
        assert [(c["name"], c["address"], c["alive"]) for c in status["collectors"]] == [
            ("col-a", a.address, True), ("col-b", b.address, True)]
        assert [(n["name"], n["collector"], n["connected"]) for n in status["nodes"]] == [
            ("web-1", "col-a", True), ("web-2", "col-b", True)]
        text = run_cli("--collector", b.address, "status")
        assert "col-a" in text.stdout and "col-b" in text.stdout

        # A note through col-b, an export and a verified bundle of the whole cluster through col-a.
        assert run_cli("--collector", b.address, "note", "cluster checked").returncode == 0
        assert [e["collector"] for e in search_json(a, "--action", "Admin.EventLog.Note")] == ["col-b"]
        exported = run_cli("--collector", a.address, "export", "--format", "csv", "--out", str(tmp_path / "x.csv"),
                           "--log-type", "application")
        assert exported.returncode == 0, exported.stderr
        assert len((tmp_path / "x.csv").read_text().splitlines()) == 21
        bundle = tmp_path / "bundle.tar.gz"
        made = run_cli("--collector", a.address, "bundle", "--log-type", "application", "--compress",
                       "--out-file", str(bundle))
        assert made.returncode == 0, made.stderr
        checked = run_cli("verify", "--bundle", str(bundle))
        assert checked.returncode == 0, checked.stderr
    finally:
        cluster.stop_all()
    # Each collector signed its own chain with its own key: the whole store verifies offline.
    keys = [str(tmp_path / name / "data" / "signing.pub") for name in ("col-a", "col-b")]
    verified = run_cli("verify", "--dsn", pg_dsn, "--public-key", keys[0], "--public-key", keys[1])
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK: ") and verified.stdout.strip().endswith(", 2 chains")
    wrong = run_cli("verify", "--dsn", pg_dsn, "--public-key", keys[0])
    assert wrong.returncode == 1 and "fleetlog verify: chain col-b: seq " in wrong.stderr


def test_agent_fails_over_after_kill_9_and_nothing_is_lost_or_doubled(tmp_path, pg_dsn):
    cluster = Cluster(tmp_path)
    try:
        a = cluster.collector("col-a", **_pg(pg_dsn))
        b = cluster.collector("col-b", **_pg(pg_dsn))
        log = tmp_path / "app.log"
        total = 30_000
        write_lines(log, [f"2025-12-01T10:00:00Z info line {i:06d}" for i in range(total // 2)])
        cluster.agent("web-1", [a, b], [{"type": "file", "paths": [str(log)]}],
                      batch={"max_events": 500, "max_wait": "20ms"})
        wait_for(lambda: a.metric("fleetlog_collector_events_stored_total") >= 2000, timeout=60,
                 what="the first batches stored through col-a")
        write_lines(log, [f"2025-12-01T10:00:00Z info line {i:06d}" for i in range(total // 2, total)])
        a.kill()     # kill -9 mid-stream: batches in flight were committed or not, never acknowledged twice
        wait_for(lambda: len(search_json(b, "--host", "web-1", "--message", "line")) >= total, timeout=120,
                 what=f"{total} lines searchable through col-b", interval=0.5)
        events = search_json(b, "--host", "web-1", "--message", "line")
        messages = [e["message"] for e in events]
        assert len(messages) == total
        assert sorted(messages) == [f"line {i:06d}" for i in range(total)]
        assert {e["collector"] for e in events} == {"col-a", "col-b"}
    finally:
        cluster.stop_all()
