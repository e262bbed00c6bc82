"""Forwarding throughput: a collector whose store already holds N events forwards them all as
RFC 5424 over TCP (octet-counting) to a real rsyslogd, which parses each message and writes it
to a file. Measured from the first message rsyslog wrote to the N-th, so collector start-up is
not counted; the collector's CPU time is reported beside it."""

from __future__ import annotations

import time

from bench.common import BenchContext, Row, cpu_seconds
from fleetlog.collector.store import IncomingEvents
from fleetlog.collector.store.sqlite import SqliteStore
from tests.harness import Cluster
from tests.rsyslog_receiver import RsyslogReceiver

EVENTS = 200_000
CHUNK = 5000
BASE_US = 1_764_685_845_000_000


def build_store(path, events: int) -> None:
    store = SqliteStore(str(path), "normal", collector="bench-collector")
    try:
        for first in range(0, events, CHUNK):
            count = min(CHUNK, events - first)
            idx = range(first, first + count)
            store.store_batch([IncomingEvents(
                host="web-1", host_ip="10.0.0.1", source_key="file:web-1", source="file:/var/log/app/app.log",
                namespace="default", log_type="application", position=idx,
                time_us=[BASE_US + i for i in idx], level=bytes([6]) * count,
                message=[f"req=r{i % 9973:05d} user=user{i % 97}@example.com Authentication SUCCESS via LDAP "
                         f"seq={i:09d}" for i in idx],
                request_id=[f"r{i % 9973:05d}" for i in idx], user=[f"user{i % 97}@example.com" for i in idx],
                action=["login.read"] * count, app=["auth"] * count, pid=[4242] * count,
                fields_json=[""] * count, flags=bytes(count), tier=["general"] * count)], BASE_US)
    finally:
        store.close()


def _count_lines(path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def run(ctx: BenchContext, events: int = EVENTS, timeout: float = 300) -> list[Row]:
    work = ctx.work / "forward"
    data = work / "collector-data"
    data.mkdir(parents=True)
    build_store(data / "events.db", events)
    rsyslog = RsyslogReceiver(work / "rsyslog", udp=False).start()
    cluster = Cluster(work)
    try:
        collector = cluster.collector("bench-collector", data_dir=str(data), forwarders=[
            {"type": "syslog", "name": "siem", "port": rsyslog.tcp_port, "protocol": "tcp",
             "log_types": ["application"]}])
        out = rsyslog.output("tcp")
        deadline = time.monotonic() + timeout
        first_seen, first_count = 0.0, 0
        got = 0
        while time.monotonic() < deadline:
            got = _count_lines(out)
            if got and not first_seen:
                first_seen, first_count = time.monotonic(), got
            if got >= events:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - first_seen if first_seen else 0.0
        cpu = cpu_seconds(collector.process.pid)
        if got < events or elapsed <= 0:
            return [Row("forward to rsyslog (TCP, RFC 5424)", f"only {got:,} of {events:,} events in {timeout:.0f} s")]
        rate = (got - first_count) / elapsed
        ctx.results["forward_rate"] = rate
        return [Row(f"forward to rsyslog (TCP, RFC 5424, {events:,} stored events)",
                    f"{rate:,.0f} events/s; collector CPU {cpu / events * 1e6:.1f} µs/event")]
    finally:
        cluster.stop_all()
        rsyslog.stop()
