"""The same workload through rsyslog: an "agent" rsyslogd tails the file (imfile) and forwards
over TCP (omfwd) to a "central" rsyslogd (imtcp) writing a file (omfile). Loopback only; stops
only the two processes it started."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import tempfile
import time

from bench.common import cpu_seconds, peak_rss_mib
from tests.harness import free_port


def _module_dir() -> str | None:
    for candidate in pathlib.Path("/usr/lib").rglob("imfile.so"):
        if "rsyslog" in str(candidate):
            return str(candidate.parent)
    return None


def run_rsyslog(input_path: pathlib.Path, lines: int, timeout: float = 300) -> dict | None:
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    modules = _module_dir()
    if not pathlib.Path(rsyslogd).exists() or modules is None:
        return None
    work = pathlib.Path(tempfile.mkdtemp(prefix="fleetlog-bench-rsyslog-"))
    port = free_port()
    (work / "central").mkdir()
    (work / "agent").mkdir()
    out = work / "out.log"
    (work / "central.conf").write_text(f"""
global(workDirectory="{work}/central" maxMessageSize="64k")
module(load="{modules}/imtcp.so")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="raw" type="string" string="%msg%\\n")
action(type="omfile" file="{out}" template="raw" asyncWriting="on" ioBufferSize="256k" flushOnTXEnd="off")
""")
    (work / "agent.conf").write_text(f"""
global(workDirectory="{work}/agent" maxMessageSize="64k")
module(load="{modules}/imfile.so" mode="inotify")
input(type="imfile" file="{input_path}" tag="app:" readMode="0" freshStartTail="off" persistStateInterval="10000")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="1024")
""")
    procs = []
    try:
        central = subprocess.Popen([rsyslogd, "-n", "-f", str(work / "central.conf"), "-i", str(work / "central.pid")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(central)
        deadline = time.monotonic() + 10
        import socket
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        started = time.monotonic()
        agent = subprocess.Popen([rsyslogd, "-n", "-f", str(work / "agent.conf"), "-i", str(work / "agent.pid")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(agent)
        got = 0
        while time.monotonic() - started < timeout:
            if out.exists():
                with open(out, "rb") as handle:
                    got = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
            if got >= lines:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        return {"lines": got, "seconds": elapsed, "rate": got / elapsed,
                "cpu": cpu_seconds(central.pid) + cpu_seconds(agent.pid),
                "rss_mib": max(peak_rss_mib(central.pid), peak_rss_mib(agent.pid))}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def run(ctx) -> list:
    """rsyslog on the end-to-end section's input file, and fleetlog's figures of the same run over
    rsyslog's: lines/s, and CPU per event against rsyslog's CPU per line (contract §5)."""
    from bench.common import Row, write_workload

    e2e = ctx.results.get("e2e")
    if e2e is None:  # run alone: make the same input
        input_path = ctx.work / "rsyslog-input.log"
        write_workload(input_path, ctx.lines)
        events = ctx.lines
    else:
        input_path, events = e2e["input_path"], e2e["events"]
    rs = run_rsyslog(input_path, events)
    if rs is None:
        return [Row("rsyslog file->tcp->file", "rsyslogd not installed (make system-deps)")]
    ctx.results["rsyslog"] = rs
    rows = [Row("rsyslog file->tcp->file, same input", f"{rs['rate']:,.0f} lines/s (cpu {rs['cpu']:.1f} s)")]
    if e2e is None or not rs["lines"]:
        return rows
    ratio = e2e["rate"] / rs["rate"] if rs["rate"] else 0.0
    rows.append(Row("end-to-end / rsyslog lines/s", f"{ratio:.2f}", ">= 0.5", ratio >= 0.5))
    # CPU time of each process over its whole life (start-up included), per event it delivered;
    # rsyslog's is its two daemons' together, per line written by the central one.
    agent_us = e2e["agent_cpu"] * 1e6 / e2e["events"]
    collector_us = e2e["collector_cpu"] * 1e6 / e2e["events"]
    rsyslog_us = rs["cpu"] * 1e6 / rs["lines"]
    rows.append(Row("CPU per event: agent / collector, beside rsyslog per line (both daemons)",
                    f"{agent_us:.1f} / {collector_us:.1f} µs; rsyslog {rsyslog_us:.1f} µs"))
    both = (agent_us + collector_us) / rsyslog_us if rsyslog_us else float("inf")
    rows.append(Row("(agent + collector) CPU per event / rsyslog CPU per line", f"{both:.2f}", "<= 2", both <= 2))
    alone = agent_us / rsyslog_us if rsyslog_us else float("inf")
    rows.append(Row("agent CPU per event / rsyslog CPU per line", f"{alone:.2f}", "<= 1", alone <= 1))
    return rows
