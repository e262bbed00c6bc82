"""OTLP/gRPC into a relay agent shipping to a collector (`synchronous = full`), issue 29: the
end-to-end section's lines as log records (a body, a severity, a trace and span id, one attribute)
in requests of REQUEST_RECORDS, SENDERS requests at a time, as an OpenTelemetry Collector's
exporter sends them. Timed until the last request is acknowledged (the records are in the relay's
spool) and until every record is committed. No rsyslog counterpart: rsyslog does not speak OTLP.
Stops only the processes it started."""

from __future__ import annotations

import pathlib
import threading
import time

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from bench.common import Row, cpu_seconds, stored_events, write_workload
from tests.harness import Cluster, free_port, wait_for

MAX_LINES = 1_000_000
REQUEST_RECORDS = 1000
SENDERS = 4
EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def otlp_requests(input_path: pathlib.Path, lines: int) -> tuple[list[bytes], int]:
    """The workload's lines (written to input_path) as serialized ExportLogsServiceRequests of
    REQUEST_RECORDS records."""
    write_workload(input_path, lines)
    requests, count = [], 0
    request = ExportLogsServiceRequest()
    records = None
    with open(input_path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if records is None or len(records) == REQUEST_RECORDS:
                if records is not None:
                    requests.append(request.SerializeToString())
                request = ExportLogsServiceRequest()
                resource_logs = request.resource_logs.add()
                resource_logs.resource.attributes.add(key="service.name").value.string_value = "bench-app"
                records = resource_logs.scope_logs.add().log_records
            record = records.add()
            record.body.string_value = line.rstrip("\n")
            record.severity_number = 9
            record.time_unix_nano = time.time_ns()
            record.trace_id = (count + 1).to_bytes(16, "big")
            record.span_id = (count + 1).to_bytes(8, "big")
            record.attributes.add(key="http.route").value.string_value = "/api/orders"
            count += 1
    if records:
        requests.append(request.SerializeToString())
    return requests, count


def run(ctx) -> list:
    """OTLP/gRPC -> stored, records/s; the CPU each daemon spent per record."""
    requests, count = otlp_requests(ctx.work / "otlp-input.log", min(ctx.lines, MAX_LINES))
    print(f"   {count:,} records in {len(requests):,} OTLP/gRPC requests, {SENDERS} at a time", flush=True)
    tmp = ctx.work / "otlp-fleetlog"
    cluster = Cluster(tmp)
    try:
        collector = cluster.collector("bench-collector", storage={"synchronous": "full"})
        port = free_port()
        agent = cluster.agent("bench-relay", [collector], [
            {"type": "otlp", "name": "bench", "grpc_listen": f"127.0.0.1:{port}"}],
            batch={"max_wait": "100ms", "max_events": 5000})
        wait_for(lambda: "otlp listener bench-grpc on" in agent.log(), 30, "the relay listening")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        export = channel.unary_unary(EXPORT)
        failures: list[BaseException] = []

        def send(first: int) -> None:
            try:
                for data in requests[first::SENDERS]:
                    export(data, timeout=120)
            except grpc.RpcError as exc:
                failures.append(exc)
        started = time.monotonic()
        senders = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(SENDERS)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        acknowledged = time.monotonic() - started
        channel.close()
        if failures:
            raise RuntimeError(f"OTLP export failed: {failures[0]}")
        db = tmp / "bench-collector" / "data" / "events.db"
        wait_for(lambda: stored_events(db, "127.0.0.1") >= count, timeout=900, what=f"{count} records stored",
                 interval=0.2)
        stored = time.monotonic() - started
        agent_cpu, collector_cpu = cpu_seconds(agent.process.pid), cpu_seconds(collector.process.pid)
    finally:
        cluster.stop_all()
    return [Row("OTLP/gRPC -> acknowledged (in the relay's spool)", f"{count / acknowledged:,.0f} records/s"),
            Row("OTLP/gRPC -> stored (relay agent -> collector, synchronous=full)",
                f"{count / stored:,.0f} records/s (cpu agent {agent_cpu:.1f} s, collector {collector_cpu:.1f} s)"),
            Row("CPU per OTLP record: relay agent / collector",
                f"{agent_cpu / count * 1e6:.1f} µs / {collector_cpu / count * 1e6:.1f} µs")]
