"""Metrics and health (contract §4.9) of real daemons: every metric family present on /metrics and
the ones this setup exercises moving to exact values; /healthz, /readyz, the gRPC health service,
`fleetlog status`, and a note stored although the collector's threshold is `error`."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness import free_port, run_cli, search_json, wait_for, write_lines

COLLECTOR_FAMILIES = [
    "events_received_total", "events_stored_total", "events_duplicate_total", "events_dropped_total",
    "ingest_batch_seconds", "agents_connected", "agent_last_seen_timestamp_seconds", "storage_bytes",
    "events_purged_total", "forward_events_total", "forward_lag_events", "forward_errors_total",
    "checkpoints_total", "agent_clock_skew_seconds"]
AGENT_FAMILIES = [
    "events_read_total", "events_acked_total", "events_dropped_total", "spool_events", "spool_bytes",
    "send_errors_total", "ack_latency_seconds", "connected", "source_lag_bytes"]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _families(text: str) -> set[str]:
    """Metric names on `# TYPE` lines."""
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_every_metric_family_moves_and_health_answers(cluster, tmp_path):
    now = dt.datetime.now(dt.UTC)
    old = (now - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    collector = cluster.collector(
        levels={"default": "error"},
        retention={"general": "1d", "purge_interval": "1s"},
        forwarders=[{"name": "archive", "type": "file", "path": str(tmp_path / "forwarded.jsonl")},
                    {"name": "siem", "type": "syslog", "protocol": "tcp", "host": "127.0.0.1",
                     "port": free_port()}])   # nobody listens: its errors count
    logs = tmp_path / "logs"
    logs.mkdir()
    write_lines(logs / "app.log", [f"{recent} ERROR disk full", f"{recent} WARNING slow",
                                   f"{recent} INFO fine", f"{old} CRITICAL three days old"])
    source = {"type": "file", "paths": [str(logs / "*.log")]}
    # The first collector address is dead: the agent counts a send error and fails over.
    agent = cluster.agent("web-1", [f"127.0.0.1:{free_port()}", collector.address], [source])
    wait_for(lambda: collector.metric("fleetlog_collector_events_purged_total", {"tier": "general"}) == 1, 30,
             "the three-day-old event purged")

    c = collector.metrics()
    assert {f"fleetlog_collector_{f}" for f in COLLECTOR_FAMILIES} <= _families(c)
    value = lambda name, labels=None: collector.metric("fleetlog_collector_" + name, labels)
    assert value("events_received_total", {"host": "web-1"}) == 4
    assert value("events_stored_total", {"host": "web-1"}) == 2
    assert value("events_dropped_total", {"reason": "below_level"}) == 2
    assert value("ingest_batch_seconds_count") >= 1
    assert value("agents_connected") == 1
    assert abs(value("agent_last_seen_timestamp_seconds", {"host": "web-1"}) - time.time()) < 60
    assert abs(value("agent_clock_skew_seconds", {"host": "web-1"})) < 1.0
    assert value("storage_bytes") > 0
    wait_for(lambda: value("forward_events_total", {"forwarder": "archive"}) >= 2, 30, "file forwarder delivered")
    wait_for(lambda: value("forward_errors_total", {"forwarder": "siem"}) >= 1, 30, "syslog forwarder failed")
    assert value("forward_lag_events", {"forwarder": "siem"}) >= 2

    wait_for(lambda: agent.metric("fleetlog_agent_events_acked_total") == 4, 30, "agent acked")
    a = agent.metrics()
    assert {f"fleetlog_agent_{f}" for f in AGENT_FAMILIES} <= _families(a)
    avalue = lambda name, labels=None: agent.metric("fleetlog_agent_" + name, labels)
    assert avalue("events_read_total") == 4
    assert avalue("events_dropped_total", {"reason": "collector_threshold"}) == 2
    assert avalue("send_errors_total") >= 1
    assert avalue("ack_latency_seconds_count") >= 1
    assert avalue("connected") == 1
    wait_for(lambda: avalue("spool_events") == 0 and avalue("spool_bytes") == 0, 10, "spool drained")
    wait_for(lambda: avalue("source_lag_bytes") == 0, 10, "source lag 0")
    assert (logs / "app.log").stat().st_size > 0

    # A note is stored whatever the threshold says (info under an `error` threshold).
    note = run_cli("--collector", collector.address, "note", "maintenance window starts")
    assert note.returncode == 0, note.stderr
    assert note.stdout.startswith("note stored as seq ")
    [stored] = search_json(collector, "--action", "Admin.EventLog.Note")
    assert (stored["message"], stored["level"], stored["log_type"], stored["tier"], stored["host"],
            stored["source"]) == ("maintenance window starts", "info", "audit", "security", "collector-1", "collector")

    # Health: HTTP on both daemons, gRPC health on the collector.
    assert _get(collector.metrics_port, "/healthz") == (200, "ok\n")
    assert _get(collector.metrics_port, "/readyz") == (200, "ready\n")
    assert _get(agent.metrics_port, "/healthz") == (200, "ok\n")
    assert _get(agent.metrics_port, "/readyz") == (200, f"connected to {collector.address}\n")
    with grpc.insecure_channel(collector.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "fleetlog.v1.Ingest", "fleetlog.v1.Query"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service

    # Status: the node, its events and clock skew, the forwarders and the next purge.
    status = run_cli("--collector", collector.address, "status", "--format", "json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    [node] = report["nodes"]
    assert (node["name"], node["ip"], node["connected"], node["events"]) == ("web-1", "127.0.0.1", True, "2")
    assert report["next_purge"] > time.time() - 5
    assert {f["name"] for f in report["forwarders"]} == {"archive", "siem"}
    text = run_cli("--collector", collector.address, "status").stdout
    assert "web-1" in text and "next purge" in text and "WARNING" not in text

    # Re-reading everything (state wiped) adds duplicates, not events.
    agent.stop()
    wait_for(lambda: value("agents_connected") == 0, 10, "agent disconnected")
    shutil.rmtree(agent.config["state_dir"])
    agent.start()
    wait_for(lambda: value("events_duplicate_total", {"host": "web-1"}) == 1, 30, "duplicates counted")
    # The purged three-day-old event is no longer there to match: stored again (and purged again).
    assert value("events_stored_total", {"host": "web-1"}) == 3
    wait_for(lambda: value("events_purged_total", {"tier": "general"}) == 2, 10, "re-sent expired event purged")

    # The agent is alive but not ready without a collector.
    collector.stop()
    wait_for(lambda: _get(agent.metrics_port, "/readyz") == (503, "not connected to a collector\n"), 30,
             "agent not ready")
    assert _get(agent.metrics_port, "/healthz") == (200, "ok\n")


def test_status_warns_about_a_node_whose_clock_is_skewed(cluster):
    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2_grpc as pb_grpc
    collector = cluster.collector()
    chunk = pb.Chunk(source="file:/x.log", source_key="x", namespace="default", log_type="application",
                     position=[1], time_us=[1], level=bytes([6]), message=["hello"], request_id=[""], user=[""],
                     action=[""], app=[""], pid=[0], fields_json=[""], flags=bytes(1))
    ahead_us = int((time.time() + 5.0) * 1e6)   # this node's clock runs 5 s ahead
    requests = [pb.IngestRequest(hello=pb.Hello(node_name="skewed-1")),
                pb.IngestRequest(batch=pb.Batch(batch_id=1, sent_at_us=ahead_us, chunks=[chunk]))]
    with grpc.insecure_channel(collector.address) as channel:
        [reply] = list(pb_grpc.IngestStub(channel).Stream(iter(requests), timeout=20))
    assert (reply.stored, reply.error) == (1, "")
    skew = collector.metric("fleetlog_collector_agent_clock_skew_seconds", {"host": "skewed-1"})
    assert 4.0 < skew < 5.5
    text = run_cli("--collector", collector.address, "status")
    assert text.returncode == 0, text.stderr
    [line] = [ln for ln in text.stdout.splitlines() if ln.startswith("skewed-1")]
    assert line.split()[1:3] == ["127.0.0.1", "no"]
    assert line.endswith("WARNING: clock off by more than 1s")
