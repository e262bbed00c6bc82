"""Syslog over TCP into fleetlog beside rsyslog on the same input in the same run (issue 29): the
end-to-end section's lines as RFC 5424 messages with octet counting, sent over one loopback
connection (a) to a relay agent's syslog listener shipping to a collector (`synchronous = full`),
timed until every message is committed, and (b) to rsyslogd's imtcp writing omfile, timed until
every line is written. Stops only the processes it started."""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
import threading
import time

from bench.common import cpu_seconds, stored_events, write_workload
from bench.e2e import _Head
from tests.harness import Cluster, free_port, wait_for

MAX_LINES = 1_000_000
PAIRS = 3                   # alternated runs of fleetlog and rsyslog (run's docstring)


def syslog_payload(input_path: pathlib.Path) -> tuple[bytes, int]:
    """The input's lines as octet-counted RFC 5424 messages (facility local0, severity info)."""
    frames = []
    with open(input_path, "rb") as handle:
        for line in handle:
            message = b"<134>1 - bench-host app 4242 - - " + line.rstrip(b"\n")
            frames.append(b"%d %s" % (len(message), message))
    return b"".join(frames), len(frames)


def _send(port: int, payload: bytes) -> threading.Thread:
    def send() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=600) as conn:
            conn.sendall(payload)
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def run_fleetlog(tmp: pathlib.Path, payload: bytes, count: int) -> dict:
    cluster = Cluster(tmp)
    try:
        collector = cluster.collector("bench-collector", storage={"synchronous": "full"})
        port = free_port()
        agent = cluster.agent("bench-relay", [collector], [
            {"type": "syslog", "name": "bench", "protocol": "tcp", "listen": f"127.0.0.1:{port}"}],
            batch={"max_wait": "100ms", "max_events": 5000})
        wait_for(lambda: "syslog listener bench on" in agent.log(), 30, "the relay listening")
        db = tmp / "bench-collector" / "data" / "events.db"
        # As the e2e section: progress from the committed head in the store's main file every
        # 50 ms (rsyslog's output is polled as often), then the relayed events counted exactly;
        # the collector's CPU from when the messages start.
        head = _Head(db)
        first = head.seq()
        collector_cpu_before = cpu_seconds(collector.process.pid)
        started = time.monotonic()
        sender = _send(port, payload)
        wait_for(lambda: head.seq() - first >= count, timeout=900, what=f"{count} messages committed", interval=0.05)
        wait_for(lambda: stored_events(db, "127.0.0.1") >= count, timeout=900, what=f"{count} messages stored",
                 interval=0.05)
        head.close()
        elapsed = time.monotonic() - started
        sender.join(5)
        return {"events": count, "seconds": elapsed, "rate": count / elapsed,
                "agent_cpu": cpu_seconds(agent.process.pid),
                "collector_cpu": cpu_seconds(collector.process.pid) - collector_cpu_before}
    finally:
        cluster.stop_all()


def run_rsyslog(tmp: pathlib.Path, payload: bytes, count: int, timeout: float = 600) -> dict | None:
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not pathlib.Path(rsyslogd).exists():
        return None
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "work").mkdir(exist_ok=True)
    port = free_port()
    out = tmp / "out.log"
    conf = tmp / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{tmp / 'work'}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="raw" type="string" string="%msg%\\n")
action(type="omfile" file="{out}" template="raw" asyncWriting="on" ioBufferSize="256k" flushOnTXEnd="off")
""")
    process = subprocess.Popen([rsyslogd, "-n", "-f", str(conf), "-i", str(tmp / "rsyslog.pid")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0
        wait_for(listening, 15, "rsyslogd listening")
        started = time.monotonic()
        sender = _send(port, payload)

        def written() -> int:
            if not out.exists():
                return 0
            with open(out, "rb") as handle:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        wait_for(lambda: written() >= count, timeout, f"{count} lines written by rsyslog", interval=0.05)
        elapsed = time.monotonic() - started
        sender.join(5)
        return {"lines": count, "seconds": elapsed, "rate": count / elapsed, "cpu": cpu_seconds(process.pid)}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def run(ctx) -> list:
    """TCP syslog -> stored, beside rsyslog imtcp -> omfile on the same messages: goal >= 0.5x.

    PAIRS runs of each, alternated (fleetlog, rsyslog, fleetlog, ...): this machine's speed drifts
    by a quarter within minutes, and one pair's ratio moved by as much. The goal is judged on the
    median of the pairs' ratios; every pair's is shown."""
    import statistics

    from bench.common import Row

    lines = min(ctx.lines, MAX_LINES)
    input_path = ctx.work / "syslog-input.log"
    write_workload(input_path, lines)
    payload, count = syslog_payload(input_path)
    print(f"   {count:,} RFC 5424 messages over one TCP connection (octet counting), {PAIRS} alternated pairs",
          flush=True)
    ours, theirs = [], []
    for pair in range(PAIRS):
        ours.append(run_fleetlog(ctx.work / f"syslog-fleetlog-{pair}", payload, count))
        rsyslog = run_rsyslog(ctx.work / f"syslog-rsyslog-{pair}", payload, count)
        if rsyslog is not None:
            theirs.append(rsyslog)
    rows = [Row("TCP syslog -> stored (relay agent -> collector, synchronous=full)",
                f"{_span([r['rate'] for r in ours])} messages/s (cpu a run: agent "
                f"{_span([r['agent_cpu'] for r in ours], '.1f')} s, collector "
                f"{_span([r['collector_cpu'] for r in ours], '.1f')} s)")]
    if not theirs:
        return [*rows, Row("rsyslog imtcp -> omfile", "rsyslogd not installed (make system-deps)")]
    ratios = [mine["rate"] / other["rate"] for mine, other in zip(ours, theirs)]
    ratio = statistics.median(ratios)
    return [*rows,
            Row("rsyslog imtcp -> omfile, same messages",
                f"{_span([r['rate'] for r in theirs])} lines/s (cpu a run {_span([r['cpu'] for r in theirs], '.1f')} s)"),
            Row("TCP syslog -> stored / rsyslog imtcp -> omfile, median of the pairs",
                f"{ratio:.2f} (pairs: {', '.join(f'{r:.2f}' for r in ratios)})", ">= 0.5", ratio >= 0.5)]


def _span(values: list[float], spec: str = ",.0f") -> str:
    """'low-high' of the runs' figures (one figure when they agree)."""
    low, high = format(min(values), spec), format(max(values), spec)
    return low if low == high else f"{low}-{high}"
