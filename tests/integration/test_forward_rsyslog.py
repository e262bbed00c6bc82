"""Forwarding to a real rsyslog (contract §4.8): what rsyslog parsed out of fleetlog's RFC 5424 over
TCP (octet-counting), TLS (mutual, certificates made here) and UDP, RFC 3164 over TCP with LF
framing, and delivery across an rsyslog outage and a collector restart."""

from __future__ import annotations

import json

import pytest

from fleetlog.collector.forward.rfc5424 import BOM
from tests.certs import TestCA
from tests.harness import search_json, wait_for, write_lines
from tests.rsyslog_receiver import RsyslogReceiver

TRICKY = [
    # (request_id, user, action, level, message)
    ('req-"1"', "alice", "user.create", "warning", 'quote " backslash \\ bracket ] all in one'),
    ("req-2", "zoë", "Invoice.Delete", "error", "line one\nline two\n\ttabbed"),
    ("req-3", "bob", "report.view", "info", "non-ASCII: grüße, 日本語, emoji 🚀"),
    ("r]4\\", 'svc "x"', "", "notice", "plain ASCII message"),
]


def _json_line(i: int, rid: str, user: str, action: str, level: str, message: str) -> str:
    record = {"time": f"2025-12-02T14:30:45.{i:06d}Z", "level": level, "request_id": rid, "user": user,
              "msg": message, "order": i}
    if action:
        record["action"] = action
    return json.dumps(record, ensure_ascii=False)


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@pytest.fixture
def tls_material(tmp_path):
    ca = TestCA(tmp_path / "ca")
    return ca.issue("rsyslog", server=True), ca.issue("collector-1")


def test_rsyslog_parses_rfc5424_over_tcp_tls_udp_and_rfc3164(cluster, tmp_path, tls_material):
    server, client = tls_material
    rsyslog = RsyslogReceiver(tmp_path / "rsyslog", tls=server, tcp_inputs=("tcp", "tcp_lf")).start()
    try:
        common = {"type": "syslog", "host": "127.0.0.1", "facility": "local3", "log_types": ["application"]}
        collector = cluster.collector(forwarders=[
            {**common, "name": "siem-tcp", "port": rsyslog.tcp_ports["tcp"], "protocol": "tcp"},
            {**common, "name": "siem-tls", "port": rsyslog.tls_port, "protocol": "tls",
             "tls": {"ca": server.ca, "cert": client.cert, "key": client.key}},
            {**common, "name": "siem-udp", "port": rsyslog.udp_port, "protocol": "udp"},
            {**common, "name": "siem-3164", "port": rsyslog.tcp_ports["tcp_lf"], "protocol": "tcp",
             "format": "rfc3164", "framing": "lf"},
        ])
        logs = tmp_path / "logs"
        logs.mkdir()
        write_lines(logs / "app.jsonl", [_json_line(i, *t) for i, t in enumerate(TRICKY)])
        cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(logs / "*.jsonl")], "app": "billing",
                                              "parser": "json"}])
        stored = wait_for(lambda: len(search_json(collector, "--host", "web-1")) == len(TRICKY) and
                          search_json(collector, "--host", "web-1"), 30, "events stored")
        by_order = {e["fields"]["order"]: e for e in stored}

        for name in ("tcp", "tls", "udp"):
            got = rsyslog.wait_received(name, len(TRICKY))
            assert len(got) == len(TRICKY), name
            for i, (rid, user, action, level, message) in enumerate(TRICKY):
                event = by_order[i]
                parsed = got[i]
                assert parsed["hostname"] == "web-1"
                assert parsed["app_name"] == "billing"
                assert parsed["procid"] == "-"
                assert parsed["msgid"] == (action or "application")
                assert int(parsed["pri"]) == 19 * 8 + ["emergency", "alert", "critical", "error", "warning",
                                                       "notice", "info", "debug"].index(level)
                assert parsed["timestamp"] == f"2025-12-02T14:30:45.{i:06d}Z"
                expected_sd = (f'[fleetlog@32473 request_id="{_sd_escape(rid)}" user="{_sd_escape(user)}" '
                               f'namespace="default" log_type="application" tier="{event["tier"]}" '
                               f'id="{event["id"]}" seq="{event["seq"]}"][fields@32473 order="{i}"]')
                assert parsed["structured_data"] == expected_sd, name
                # MSG-UTF8 (RFC 5424 §6.4): non-ASCII text is sent after a BOM, which rsyslog keeps.
                assert parsed["msg"] == (message if message.isascii() else BOM + message), name

        got = rsyslog.wait_received("tcp_lf", len(TRICKY))
        assert len(got) == len(TRICKY)
        for i, (_, _, _, _, message) in enumerate(TRICKY):
            assert got[i]["hostname"] == "web-1"
            assert got[i]["syslogtag"] == "billing:"
            # LF framing: an embedded newline is written as rsyslog's own escape, #012.
            assert got[i]["msg"] == " " + message.replace("\n", "#012")

        for name in ("siem-tcp", "siem-tls", "siem-udp", "siem-3164"):
            wait_for(lambda name=name: collector.metric("fleetlog_collector_forward_events_total",
                                                        {"forwarder": name}) == len(TRICKY),
                     10, f"{name} confirmed every event")
            wait_for(lambda name=name: collector.metric("fleetlog_collector_forward_lag_events",
                                                        {"forwarder": name}) == 0, 10, f"{name} has no lag")
            assert collector.metric("fleetlog_collector_forward_errors_total", {"forwarder": name}) == 0
    finally:
        rsyslog.stop()


def test_outage_and_collector_restart_deliver_every_event_once_in_order(cluster, tmp_path):
    rsyslog = RsyslogReceiver(tmp_path / "rsyslog", udp=False).start()
    try:
        collector = cluster.collector(forwarders=[
            {"type": "syslog", "name": "siem", "port": rsyslog.tcp_port, "protocol": "tcp",
             "log_types": ["application"]}])
        logs = tmp_path / "logs"
        logs.mkdir()
        lines = [f"2025-12-02T14:30:45.{i:06d}Z INFO req=r{i} event number {i:05d}" for i in range(2000)]
        write_lines(logs / "app.log", lines[:300])
        cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(logs / "*.log")]}])
        rsyslog.wait_received("tcp", 300)
        wait_for(lambda: collector.metric("fleetlog_collector_forward_events_total", {"forwarder": "siem"}) == 300,
                 10, "delivery of all 300 confirmed")

        # A collector restart resumes from the durable cursor: nothing is sent twice.
        collector.stop()
        collector.start().wait_ready()
        write_lines(logs / "app.log", lines[300:600])
        rsyslog.wait_received("tcp", 600)
        wait_for(lambda: collector.metric("fleetlog_collector_forward_events_total", {"forwarder": "siem"}) == 300,
                 10, "delivery of the next 300 confirmed")

        # The SIEM goes away; ingestion goes on and the forwarder keeps trying.
        rsyslog.stop()
        write_lines(logs / "app.log", lines[600:])
        wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total", {"host": "web-1"}) == 1700,
                 30, "ingestion goes on during the outage")  # 300 were stored before the restart
        wait_for(lambda: collector.metric("fleetlog_collector_forward_errors_total", {"forwarder": "siem"}) >= 2,
                 30, "forwarding attempts failing")
        assert len(rsyslog.received("tcp")) == 600

        rsyslog.start()
        got = rsyslog.wait_received("tcp", 2000, timeout=60)
        wait_for(lambda: collector.metric("fleetlog_collector_forward_lag_events", {"forwarder": "siem"}) == 0,
                 20, "forwarder caught up after the outage")
        messages = [m["msg"] for m in rsyslog.received("tcp")]
        assert messages == [line.split(" INFO ", 1)[1] for line in lines]   # each once, in order

        audit = search_json(collector, "--action", "Collector.Forwarder.*")
        assert [e["action"] for e in audit] == ["Collector.Forwarder.Failed", "Collector.Forwarder.Recovered"]
        assert audit[0]["level"] == "error" and "siem" in audit[0]["message"]
        assert got  # rsyslog saw traffic after its restart
    finally:
        rsyslog.stop()
