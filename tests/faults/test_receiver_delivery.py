"""Issue 29's delivery test: the relay agent is killed (SIGKILL) mid-stream while an OTLP client
(the OpenTelemetry SDK's gRPC exporter) and a TCP syslog sender send, then restarted; what arrived
is counted.

What is proven, and why:
- OTLP answers success only once the records are in the relay's spool, and the spool's batches
  are stored once however often they are re-sent. So every record the relay acknowledged is
  stored, and a record is stored twice only when its request was in flight at the kill: spooled,
  but the answer never reached the client, which then sent it again (OTLP is at-least-once; its
  requests carry no id to deduplicate by). The client here re-sends whatever was not
  acknowledged, so every OTLP record is stored.
- TCP syslog has no acknowledgement: what the sender's kernel accepted but the relay had not
  spooled at the kill is lost (its socket buffers, the listener's queue, the unsealed batch).
  The relay spools one connection's messages in the order received, so what is lost is one
  contiguous run of messages, ending right before the one whose send failed (the sender goes on
  from that one on a new connection); nothing is stored twice. Its length is bounded by what the
  relay can hold unspooled: the listener's queue (MAX_PENDING), the batcher's unsealed events
  (batch.max_events) and one batch waiting for the spool, plus both kernels' socket buffers.
"""

from __future__ import annotations

import collections
import socket
import threading
import time

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from fleetlog.agent.sources.syslog import MAX_PENDING
from tests.harness import free_port, search_json, wait_for

OTLP_BATCHES, OTLP_BATCH = 40, 100
SYSLOG_LINES = 20_000
MAX_EVENTS = 5000       # the relay's batch.max_events


class OtlpClient(threading.Thread):
    """Sends numbered records in batches with the SDK's exporter; a batch not acknowledged is sent
    again. Notes each export() call: (start, end, first number, success)."""

    def __init__(self, port: int):
        super().__init__(name="otlp-client", daemon=True)
        self.exporter = OTLPLogExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=20)
        self.resource = Resource.create({"service.name": "delivery"})
        self.calls: list[tuple[float, float, int, bool]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for n in range(OTLP_BATCHES):
                first = n * OTLP_BATCH
                batch = [ReadableLogRecord(LogRecord(severity_number=SeverityNumber.INFO, body=f"otlp seq {first + i}"),
                                           self.resource) for i in range(OTLP_BATCH)]
                while True:
                    start = time.monotonic()
                    ok = self.exporter.export(batch) == LogRecordExportResult.SUCCESS
                    self.calls.append((start, time.monotonic(), first, ok))
                    if ok:
                        break
                time.sleep(0.05)     # the workload's pace, so the kill falls mid-stream
        except BaseException as exc:     # noqa: BLE001 - reported by the test
            self.error = exc


class SyslogSender(threading.Thread):
    """Octet-counted RFC 5424 over TCP; when the connection breaks, reconnects and goes on from
    the message whose send failed. Notes where each new connection started."""

    def __init__(self, port: int):
        super().__init__(name="syslog-sender", daemon=True)
        self.port = port
        self.resumed_at: list[int] = []
        self.error: BaseException | None = None

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + 30
        while True:
            try:
                return socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def run(self) -> None:
        try:
            conn = self._connect()
            seq = 0
            while seq < SYSLOG_LINES:
                message = b"<14>1 - - sender - - - syslog seq %d" % seq
                try:
                    conn.sendall(b"%d %s" % (len(message), message))
                except OSError:
                    conn.close()
                    conn = self._connect()
                    self.resumed_at.append(seq)
                    continue
                seq += 1
                if seq % 50 == 0:
                    time.sleep(0.02)     # under 2,500 messages a second: the kill falls mid-stream
            conn.close()
        except BaseException as exc:     # noqa: BLE001 - reported by the test
            self.error = exc


def _stored(collector, source: str, prefix: str) -> collections.Counter[int]:
    events = search_json(collector, "--source", source)
    return collections.Counter(int(e["message"].rsplit(" ", 1)[1]) for e in events if e["message"].startswith(prefix))


def test_relay_killed_mid_stream_otlp_loses_nothing_acknowledged_and_syslog_a_bounded_run(cluster):
    collector = cluster.collector()
    otlp_port, syslog_port = free_port(), free_port()
    relay = cluster.agent("relay-k", [collector], [
        {"type": "otlp", "name": "otel", "grpc_listen": f"127.0.0.1:{otlp_port}"},
        {"type": "syslog", "name": "tcp-in", "protocol": "tcp", "listen": f"127.0.0.1:{syslog_port}"},
    ], batch={"max_wait": "50ms", "max_events": MAX_EVENTS})
    wait_for(lambda: "otlp listener otel-grpc on" in relay.log() and "syslog listener tcp-in on" in relay.log(),
             20, "the listeners")
    otlp, syslog = OtlpClient(otlp_port), SyslogSender(syslog_port)
    otlp.start()
    syslog.start()
    # Mid-stream: both have had some of their records stored.
    wait_for(lambda: len(otlp.calls) >= 10 and len(_stored(collector, "syslog:tcp-in", "syslog")) >= 3000, 30,
             "both senders under way")
    kill_from = time.monotonic()
    relay.kill()
    kill_to = time.monotonic()
    relay.start()
    otlp.join(60)
    syslog.join(60)
    assert not otlp.is_alive() and not syslog.is_alive()
    assert otlp.error is None and syslog.error is None, (otlp.error, syslog.error)
    assert syslog.resumed_at, "the kill did not break the syslog connection"
    # Mid-stream for OTLP too: batches acknowledged before the kill, and sent after it.
    assert any(end < kill_from for _, end, _, _ in otlp.calls) and any(start > kill_to for start, _, _, _ in otlp.calls)

    # OTLP: every record stored (each was acknowledged in the end); twice only if its request
    # was in flight at the kill.
    otlp_total = OTLP_BATCHES * OTLP_BATCH
    stored: collections.Counter[int] = collections.Counter()

    def otlp_all() -> bool:
        stored.clear()
        stored.update(_stored(collector, "otlp:otel", "otlp"))
        return len(stored) >= otlp_total
    wait_for(otlp_all, 45, "every OTLP record stored")
    assert set(stored) == set(range(otlp_total))
    in_flight = {first + i for start, end, first, _ in otlp.calls if start <= kill_to and end >= kill_from
                 for i in range(OTLP_BATCH)}
    twice = {n for n, count in stored.items() if count > 1}
    assert twice <= in_flight, sorted(twice - in_flight)[:20]
    assert max(stored.values()) <= 2

    # TCP syslog: nothing twice; what is missing is one run right before where the sender resumed.
    resume = syslog.resumed_at[0]
    expect_last = SYSLOG_LINES - 1
    wait_for(lambda: expect_last in _stored(collector, "syslog:tcp-in", "syslog"), 45, "the last syslog message")
    lines = _stored(collector, "syslog:tcp-in", "syslog")
    assert max(lines.values()) == 1, [n for n, c in lines.items() if c > 1][:20]
    missing = sorted(set(range(SYSLOG_LINES)) - set(lines))
    if missing:
        assert missing == list(range(missing[0], resume)), (missing[:5], missing[-5:], resume)
    # The bound: the relay's queue and unsealed batches, and two socket buffers of these ~40-byte messages.
    buffers = 2 * 6 * 1024 * 1024 // 40
    assert len(missing) <= MAX_PENDING + 2 * MAX_EVENTS + buffers, len(missing)
    print(f"\nOTLP: {otlp_total} records, {len(twice)} stored twice (in flight at the kill: {len(in_flight)}); "
          f"syslog: {len(missing)} of {SYSLOG_LINES} lost at the kill, resumed at {resume}")
