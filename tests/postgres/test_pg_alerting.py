"""Two collectors on one PostgreSQL store, both configured with the same alert rule: one holds
the evaluator's lease, counts the events that both received, and the alert is sent once."""

from __future__ import annotations

import json

from tests.alertmanager import Alertmanager, Webhook
from tests.harness import Cluster, search_json, wait_for, write_lines

RULE = {"name": "BruteForce", "filters": {"action": "login.failed"}, "group_by": ["user"], "threshold": 5,
        "window": "1m", "severity": "critical", "summary": "{user} failed {count} sign-ins"}


def test_two_collectors_send_an_alert_once_counting_both_collectors_events(tmp_path, pg_dsn):
    hook = Webhook()
    manager = Alertmanager(tmp_path / "am", hook).start()
    cluster = Cluster(tmp_path)
    try:
        alerting = {"alertmanager_urls": [manager.url], "evaluation_interval": "200ms", "resend_delay": "1s",
                    "rules": [RULE]}
        storage = {"backend": "postgresql", "dsn": pg_dsn}
        a = cluster.collector("col-a", storage=storage, alerting=alerting)
        b = cluster.collector("col-b", storage=storage, alerting=alerting)
        wait_for(lambda: a.metric("fleetlog_collector_alert_evaluator_active")
                 + b.metric("fleetlog_collector_alert_evaluator_active") == 1, 30, "one evaluator")
        for name, collector in (("idp-1", a), ("idp-2", b)):
            logs = tmp_path / name / "logs"
            logs.mkdir(parents=True)
            # Three on each collector: only counted together do they reach the threshold of 5.
            write_lines(logs / "auth.jsonl", [json.dumps({"level": "warning", "action": "login.failed",
                                                          "user": "alice", "msg": "sign-in failed"})] * 3)
            cluster.agent(name, [collector], [{"type": "file", "paths": [str(logs / "*.jsonl")], "parser": "json"}])
        fired = wait_for(lambda: hook.alerts("firing", alertname="BruteForce", user="alice"), 60, "the alert")
        wait_for(lambda: len(search_json(a, "--action", "login.failed")) == 6, 30, "all six stored")
        holder = a if a.metric("fleetlog_collector_alert_evaluator_active") == 1 else b
        wait_for(lambda: holder.metric("fleetlog_collector_alert_notifications_total",
                                       {"alertmanager": manager.url}) >= 3, 30, "two resends after firing")
        assert len(hook.alerts("firing", alertname="BruteForce", user="alice")) == len(fired) == 1
        assert fired[0]["labels"]["collector"] == holder.config["node_name"]
        assert len(manager.alerts()) == 1
        firing = search_json(b, "--action", "alert/firing")
        assert len(firing) == 1 and firing[0]["fields"]["labels"]["user"] == "alice"
        assert firing[0]["fields"]["count"] >= 5     # 3 + 3: only both collectors' events together reach it
    finally:
        cluster.stop_all()
        manager.stop()
        hook.close()
