"""The monitoring kit against live daemons: every metric the alert rules and the dashboard read is
exposed by a real collector and agent, and a real Prometheus scraping them loads the rules,
evaluates them without error, raises no alert on this healthy pair, and answers every dashboard
query — with data for the ones a running pair always has."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import subprocess
import urllib.parse
import urllib.request

import yaml

from tests.harness import free_port, search_json, wait_for, write_lines
from tests.promql import metric_names
from tests.unit.test_dashboard import as_promql, dashboard_exprs

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "fleetlog-alerts.yml"
# Series Prometheus makes itself for every target, not read from the daemons.
PROMETHEUS_OWN = {"up"}


def _rule_exprs() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _exposed(text: str) -> set[str]:
    """Names on a /metrics page: sample names (histograms as _bucket, _sum and _count) and the
    families declared on `# TYPE` lines (a per-host counter has no sample before its first event)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def _start_pair(cluster, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_lines(logs / "app.log", [f"{now} WARNING line {i} user=alice" for i in range(6)])
    collector = cluster.collector(
        forwarders=[{"name": "archive", "type": "file", "path": str(tmp_path / "forwarded.jsonl")}],
        retention={"purge_interval": "1s"}, signing={"checkpoint_interval": "1s"})
    agent = cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(logs / "*.log")]}])
    wait_for(lambda: len(search_json(collector, "--host", "web-1")) == 6, 30, "six events stored")
    return collector, agent


def test_every_metric_the_rules_and_the_dashboard_read_is_exposed(cluster, tmp_path):
    collector, agent = _start_pair(cluster, tmp_path)
    wait_for(lambda: collector.metric("fleetlog_collector_forward_events_total") >= 6, 30, "forwarded")
    exposed = _exposed(collector.metrics()) | _exposed(agent.metrics())
    for source, exprs in (("alert rules", _rule_exprs()), ("dashboard", map(as_promql, dashboard_exprs()))):
        for expr in exprs:
            missing = metric_names(expr) - exposed - PROMETHEUS_OWN
            assert not missing, f"{source}: {expr!r} reads {sorted(missing)}, which no daemon exposes"


class Prometheus:
    """A real Prometheus server on loopback scraping the two daemons every second."""

    def __init__(self, tmp: pathlib.Path, collector, agent):
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": "fleetlog-collector", "static_configs": [
                    {"targets": [f"127.0.0.1:{collector.metrics_port}"]}]},
                {"job_name": "fleetlog-agent", "static_configs": [
                    {"targets": [f"127.0.0.1:{agent.metrics_port}"]}]},
            ],
        }
        path = tmp / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.log = open(tmp / "prometheus.log", "wb")   # noqa: SIM115 — closed in stop()
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={path}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:   # a bad query: 400 with the parser's error
            return json.loads(exc.read())

    def query(self, expr: str) -> list[dict]:
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", f"{expr!r}: {answer.get('error')}"
        return answer["data"]["result"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


def test_prometheus_evaluates_the_rules_and_the_dashboard_on_live_daemons(cluster, tmp_path):
    collector, agent = _start_pair(cluster, tmp_path)
    prometheus = Prometheus(tmp_path, collector, agent)
    try:
        def both_up() -> bool:
            return len([r for r in prometheus.query("up == 1")]) == 2
        wait_for(both_up, 60, "prometheus scraping both daemons")
        # Enough samples for rate() over the dashboard's interval.
        wait_for(lambda: prometheus.query("count_over_time(up[1m]) >= 4"), 60, "four scrapes of each")

        groups = prometheus.api("rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) == len(_rule_exprs())
        wait_for(lambda: all(r["lastEvaluation"] > "2000" for g in prometheus.api("rules")["data"]["groups"]
                             for r in g["rules"]), 30, "every rule evaluated")
        for group in prometheus.api("rules")["data"]["groups"]:
            for rule in group["rules"]:
                assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        assert prometheus.query("ALERTS") == [], "a healthy pair raises no alert"

        for expr in dashboard_exprs():
            prometheus.query(expr.replace("$__rate_interval", "1m"))   # every query is answered
        daemons = prometheus.query("process_resident_memory_bytes * on (job, instance) group_left (daemon) "
                                   "fleetlog_build_info")
        assert sorted(r["metric"]["daemon"] for r in daemons) == ["agent", "collector"]
        assert all(5e6 < float(r["value"][1]) < 1e9 for r in daemons)
        [stored] = prometheus.query("sum by (host) (increase(fleetlog_collector_events_stored_total[5m]))")
        assert stored["metric"] == {"host": "web-1"}
        [skew] = prometheus.query("fleetlog_collector_agent_clock_skew_seconds")
        assert abs(float(skew["value"][1])) < 1
        [spool] = prometheus.query("fleetlog_agent_spool_bytes / fleetlog_agent_spool_max_bytes")
        assert float(spool["value"][1]) == 0
    finally:
        prometheus.stop()
