"""Retention in a cluster: an expired day is dropped as a whole partition by one collector for
every chain, the purges are recorded, and the store still verifies."""

from __future__ import annotations

import datetime as dt

import psycopg

from tests.harness import Cluster, run_cli, search_json, wait_for, write_lines


def test_expired_days_are_dropped_for_every_chain_and_the_store_verifies(tmp_path, pg_dsn):
    cluster = Cluster(tmp_path)
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {"storage": {"backend": "postgresql", "dsn": pg_dsn},
              "retention": {"general": "7d", "purge_interval": "1h"}}
    try:
        a = cluster.collector("col-a", **config)
        b = cluster.collector("col-b", **config)
        for name, collector in (("web-1", a), ("web-2", b)):
            log = tmp_path / f"{name}.log"
            write_lines(log, [f"2025-01-0{1 + i % 2}T10:00:00Z info old {i}" for i in range(100)]
                        + [f"{today} info new {i}" for i in range(10)])
            cluster.agent(name, [collector], [{"type": "file", "paths": [str(log)]}])
        wait_for(lambda: len(search_json(a, "--host", "web-*")) == 220, timeout=60, what="220 events stored")
        # A shorter purge interval applied by reload (SIGHUP) starts a purge at once.
        for collector in (a, b):
            cluster.rewrite(collector, retention={"purge_interval": "2s"})
            collector.process.send_signal(1)
        wait_for(lambda: len(search_json(b, "--host", "web-*")) == 20, timeout=60, what="old days purged")
        assert sorted(e["message"] for e in search_json(b, "--host", "web-*")) == sorted(
            f"new {i}" for i in range(10) for _ in (1, 2))
        with psycopg.connect(pg_dsn) as conn:
            tables = {t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'events_%'")}
        assert not {"events_general_20250101", "events_general_20250102"} & tables
        purges = [e for e in search_json(a, "--action", "Collector.Retention.Purge")]
        assert sum(e["fields"]["count"] for e in purges) == 200
        assert {e["fields"].get("chain", e["collector"]) for e in purges} == {"col-a", "col-b"}
    finally:
        cluster.stop_all()
    keys = [str(tmp_path / name / "data" / "signing.pub") for name in ("col-a", "col-b")]
    verified = run_cli("verify", "--dsn", pg_dsn, "--public-key", keys[0], "--public-key", keys[1])
    assert verified.returncode == 0, verified.stderr
