"""The Grafana dashboard (deploy/grafana/fleetlog.json) as Grafana imports it: valid JSON, one
`datasource` variable that every panel and query uses, panels that do not overlap, every query
valid PromQL (promtool parses them), and the panels the operator needs present. Whether the
daemons really expose what the queries read is tests/integration/test_monitoring_kit.py."""

from __future__ import annotations

import json
import pathlib
import subprocess

import yaml

from tests.promql import metric_names

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "fleetlog.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def as_promql(expr: str) -> str:
    """A dashboard query with Grafana's interval variable replaced, as Grafana sends it."""
    return expr.replace("$__rate_interval", "1m")


def test_the_dashboard_is_importable_json_with_a_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "fleetlog" and dashboard["uid"]
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
    assert "${datasource}" in DASHBOARD.read_text() and '"uid": "prometheus"' not in DASHBOARD.read_text()


def test_every_query_is_valid_promql(tmp_path):
    """promtool parses each query as the expression of a recording rule."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"fleetlog:dashboard_query_{i}", "expr": as_promql(expr)}
        for i, expr in enumerate(dashboard_exprs())]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    check = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_dashboard_shows_what_the_operator_needs():
    """Ingest by node, duplicates and drops, both histograms, spool and lag, storage, forwarder lag,
    purges, clock skew, each daemon's memory and CPU, and the relays' receivers."""
    used = set().union(*(metric_names(as_promql(e)) for e in dashboard_exprs()))
    assert {
        "fleetlog_collector_events_received_total", "fleetlog_collector_events_stored_total",
        "fleetlog_collector_events_duplicate_total", "fleetlog_collector_events_dropped_total",
        "fleetlog_agent_events_dropped_total", "fleetlog_agent_ack_latency_seconds_bucket",
        "fleetlog_collector_ingest_batch_seconds_bucket", "fleetlog_agent_spool_bytes",
        "fleetlog_agent_source_lag_bytes", "fleetlog_collector_storage_bytes",
        "fleetlog_collector_forward_lag_events", "fleetlog_collector_events_purged_total",
        "fleetlog_collector_agent_clock_skew_seconds", "process_resident_memory_bytes",
        "process_cpu_seconds_total", "fleetlog_build_info",
        "fleetlog_agent_receiver_events_received_total", "fleetlog_agent_receiver_events_dropped_total",
        "fleetlog_agent_receiver_refused_total", "fleetlog_agent_receiver_malformed_total",
        "fleetlog_agent_receiver_events_rejected_total",
    } <= used
    joined = [e for e in dashboard_exprs() if "process_" in e]
    assert joined and all("group_left (daemon) fleetlog_build_info" in e for e in joined)
