"""What the alert evaluator costs per committed event (issue 31: a thousand rules over a busy
collector must cost little).

200,000 stored rows of an identity service's shape (50 actions, one in ten `login.failed`, 500
users, levels from debug to critical, 3 namespaces, 20 hosts) go through the evaluator's counting
step (`Evaluator._count`: the rule index, each candidate rule's filters, the sliding-window
counts) in pages of 5,000 as the store hands them over, with 1, 100 and 1,000 rules. The rules
are a realistic mix: nine in ten name exact actions (the index files them by action), one in
twenty a minimum level, one in twenty neither (a host wildcard and a message keyword: tested
against every event). Then one evaluation of every rule's groups. Reported: events/s and CPU µs
per event (process time: the counting runs on one thread), and the evaluation's wall time.
"""

from __future__ import annotations

import time

from bench.common import BenchContext, Row
from fleetlog.collector.alerting.evaluator import Evaluator
from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.metrics import CollectorMetrics
from fleetlog.collector.store import EVENT_COLUMNS, open_backend
from fleetlog.common.config import build_config

EVENTS = 200_000
PAGE = 5_000
ACTIONS = ["login.failed", *(f"svc.op{i}" for i in range(49))]
LEVELS = [7, 6, 6, 6, 6, 5, 4, 3, 2]          # mostly info; some notice, warning, error, critical
# Message templates of an identity service; each event fills one with its own numbers.
TEMPLATES = ["sign-in failed for {u}: bad password", "sign-in succeeded for {u}", "session {n} opened",
             "session {n} closed after {m} s", "token refreshed for {u}", "mfa challenge sent to {u}",
             "mfa challenge passed by {u}", "password changed by {u}", "account {u} locked", "LDAP bind took {m} ms",
             "rate limit reached for 10.1.{m}.{n}", "certificate expires in {m} days", "cache miss ratio {m}",
             "request {n} took {m} ms", "upstream 10.2.{m}.7 timed out", "database pool exhausted ({m} waiting)",
             "disk usage {m} percent", "config reloaded", "health check ok", "out of memory in worker {m}"]


def _rows(now_us: int) -> list[tuple]:
    rows = []
    for i in range(EVENTS):
        values = {"seq": i + 1, "id": f"id{i}", "time": now_us - (EVENTS - i), "received_at": now_us,
                  "host": f"idp-{i % 20}", "host_ip": f"10.0.0.{i % 20}", "collector": "bench",
                  "namespace": ("default", "payments", "identity")[i % 3], "source": "app.log",
                  "log_type": "security", "app": "idp", "pid": 1, "level": LEVELS[i % len(LEVELS)],
                  "request_id": f"r{i % 9973}", "user": f"user{i % 500}",
                  "action": "login.failed" if i % 10 == 0 else ACTIONS[1 + i % 49],
                  "message": TEMPLATES[i % len(TEMPLATES)].format(u=f"user{i % 500}", n=i, m=i % 250),
                  "fields": "", "tier": "security", "truncated": 0}
        rows.append(tuple(values[c] for c in EVENT_COLUMNS))
    return rows


def _rules(count: int) -> list[dict]:
    rules = [{"name": "BruteForce", "filters": {"action": "login.failed"}, "group_by": ["user"], "threshold": 5,
              "window": "5m"}]
    for i in range(1, count):
        if i % 20 == 0:
            filters = {"min_level": "error", "namespace": ("payments", "identity")[i % 2]}
        elif i % 20 == 1:
            filters = {"host": f"idp-{i % 20}*", "message": TEMPLATES[i % len(TEMPLATES)].split()[0].strip(":")}
        else:
            filters = {"action": ACTIONS[i % len(ACTIONS)], "user": f"user{i % 500}"}
        rules.append({"name": f"rule-{i}", "filters": filters, "group_by": ["host"], "threshold": 100,
                      "window": "5m"})
    return rules


def _measure(ctx: BenchContext, rows: list[tuple], count: int) -> tuple[float, float, float]:
    folder = ctx.work / f"alerting-{count}"
    config = build_config(CollectorConfig, {"data_dir": str(folder), "alerting": {
        "alertmanager_urls": ["http://127.0.0.1:9"], "rules": _rules(count)}}, "bench")
    backend = open_backend(config, str(folder))
    try:
        evaluator = Evaluator(config.alerting, backend, CollectorMetrics(), lambda events: None, lambda: "bench", "")
        pages = [("bench", rows[i:i + PAGE]) for i in range(0, len(rows), PAGE)]
        wall, cpu = time.perf_counter(), time.process_time()
        for page in pages:
            evaluator._count([page])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        evaluator.receivers = []            # decide only: no Alertmanager in the bench
        started = time.perf_counter()
        evaluator.evaluate()
        return len(rows) / wall, cpu / len(rows) * 1e6, time.perf_counter() - started
    finally:
        backend.close()


def run(ctx: BenchContext) -> list[Row]:
    rows = _rows(int(time.time() * 1e6))
    out = []
    for count in (1, 100, 1000):
        rate, cpu_us, evaluation = _measure(ctx, rows, count)
        out.append(Row(f"alert evaluator, {count} rule{'s' if count > 1 else ''}: events/s (CPU per event)",
                       f"{rate:,.0f} ({cpu_us:.1f} µs)", "issue 31: cheap for 1,000 rules"))
        out.append(Row(f"alert evaluation of every group, {count} rule{'s' if count > 1 else ''}",
                       f"{evaluation * 1000:.1f} ms"))
    return out
