"""The OTLP receiver (contract §10, issue 29) with real clients: the OpenTelemetry Python SDK's
OTLP log exporters (gRPC and HTTP/protobuf) and plain HTTP clients sending OTLP/JSON, into one
relay agent that ships to a real collector. Asserts the exact events stored, partial success,
hostile bodies answered and counted, and the full-spool answer of both protocols.

One relay and one collector for the module (the full-spool test has its own small-spool relay)."""

from __future__ import annotations

import gzip
import json
import pathlib
import socket
import urllib.error
import urllib.request

import grpc
import pytest
import requests
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import TraceFlags

from tests.certs import TestCA
from tests.harness import (
    Cluster,
    assert_connections_bounded,
    free_port,
    metric_value,
    relay_cluster,
    run_cli,
    search_json,
    searched_exactly,
    wait_for,
)

TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN = 0x00F067AA0BA902B7


class Relay:
    def __init__(self, cluster: Cluster, folder):
        self.grpc_port, self.http_port = free_port(), free_port()
        self.tls_ports = {"grpc": free_port(), "http": free_port()}
        ca = TestCA(folder / "ca")
        self.server, self.client = ca.issue("relay-1", server=True), ca.issue("app-server-3")
        self.stranger = TestCA(folder / "other-ca").issue("app-server-3")
        self.collector = cluster.collector()
        self.agent = cluster.agent("relay-1", [self.collector], [
            {"type": "otlp", "name": "otel", "grpc_listen": f"127.0.0.1:{self.grpc_port}",
             "http_listen": f"127.0.0.1:{self.http_port}", "max_records_per_request": 50,
             "max_message_bytes": 1000, "max_connections": 4, "idle_timeout": "2s"},
            {"type": "otlp", "name": "otel-tls", "grpc_listen": f"127.0.0.1:{self.tls_ports['grpc']}",
             "http_listen": f"127.0.0.1:{self.tls_ports['http']}",
             "tls": {"cert": self.server.cert, "key": self.server.key, "ca": self.server.ca}}])
        wait_for(lambda: all(f"otlp listener {name} on" in self.agent.log()
                             for name in ("otel-grpc", "otel-http", "otel-tls-grpc", "otel-tls-http")),
                 20, "the otlp listeners")

    def events(self, count: int, *filters: str) -> list[dict]:
        return searched_exactly(self.collector, count, "--source", "otlp:otel", "--order", "asc", *filters,
                                context=self.agent.log)

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.agent.metrics(), name, labels)

    def post(self, body: bytes, content_type: str, encoding: str = "") -> tuple[int, bytes, dict]:
        headers = {"Content-Type": content_type, **({"Content-Encoding": encoding} if encoding else {})}
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/v1/logs", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    with relay_cluster(tmp_path_factory.mktemp("otlp-relay"), Relay) as relay:
        yield relay


def _send_with_sdk(exporter, records: list[LogRecord]) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout", "host.name": "pod-17",
                                                        "process.pid": 4242, "k8s.namespace.name": "shop"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("shop.orders")
    for record in records:
        logger.emit(record)
    assert provider.force_flush(20_000)
    provider.shutdown()


def _records(protocol: str) -> list[LogRecord]:
    records = [LogRecord(timestamp=1_767_225_600_000_000_000 + i * 1000, severity_number=SeverityNumber.WARN,
                         severity_text="WARN", body=f"{protocol} order {i} shipped",
                         attributes={"order.id": i, "user": "alice", "paid": True},
                         trace_id=TRACE + i, span_id=SPAN, trace_flags=TraceFlags(1))
               for i in range(20)]
    records.append(LogRecord(severity_number=SeverityNumber.FATAL, body={"error": "disk", "code": 5, "via": protocol},
                             attributes={"request_id": "req-own"}, trace_id=TRACE, span_id=SPAN,
                             trace_flags=TraceFlags(1)))
    records.append(LogRecord(severity_text="Notice", body=f"{protocol} no trace"))
    return records


def test_sdk_exporters_over_grpc_and_http(relay):
    # Both compressed, as the SDKs are often configured (OTEL_EXPORTER_OTLP_COMPRESSION=gzip).
    _send_with_sdk(GrpcLogExporter(endpoint=f"127.0.0.1:{relay.grpc_port}", insecure=True,
                                   compression=grpc.Compression.Gzip), _records("grpc"))
    _send_with_sdk(HttpLogExporter(endpoint=f"http://127.0.0.1:{relay.http_port}/v1/logs",
                                   compression=Compression.Gzip), _records("http"))
    for protocol in ("grpc", "http"):
        events = relay.events(22, "--message", protocol)
        shipped = [e for e in events if "shipped" in e["message"]]
        assert [e["message"] for e in shipped] == [f"{protocol} order {i} shipped" for i in range(20)]
        for i, event in enumerate(shipped):
            trace = f"{TRACE + i:032x}"
            assert (event["host"], event["app"], event["pid"], event["level"]) == ("127.0.0.1", "checkout", 4242,
                                                                                   "warning")
            assert (event["namespace"], event["log_type"], event["source"]) == ("default", "application", "otlp:otel")
            assert event["time"] == f"2026-01-01T00:00:00.{i:06d}Z"
            assert event["user"] == "alice"
            assert event["request_id"] == trace              # no request id of its own: the trace id
            resource = event["fields"].pop("resource")
            assert event["fields"] == {
                "order.id": i, "paid": True, "trace_id": trace, "span_id": f"{SPAN:016x}", "scope": "shop.orders",
                "claimed_host": "pod-17", "relay": "relay-1"}
            # The resource's other attributes (the SDK adds its own); service.name, host.name and
            # process.pid are the columns above.
            assert set(resource) == {"k8s.namespace.name", "telemetry.sdk.language", "telemetry.sdk.name",
                                     "telemetry.sdk.version", "service.instance.id"}
            assert resource["k8s.namespace.name"] == "shop"
        fatal = next(e for e in events if e["level"] == "emergency")
        assert json.loads(fatal["message"]) == {"error": "disk", "code": 5, "via": protocol}
        assert fatal["request_id"] == "req-own"              # its own request id wins over the trace id
        assert fatal["fields"]["trace_id"] == f"{TRACE:032x}"
        plain = next(e for e in events if e["message"] == f"{protocol} no trace")
        assert plain["level"] == "notice" and plain["request_id"] is None and "trace_id" not in plain["fields"]
        assert relay.metric("fleetlog_agent_receiver_events_received_total", listener=f"otel-{protocol}") == 22

    # Trace ids are searchable: the request id (fleetlog trace) and the field (--where).
    trace = f"{TRACE + 3:032x}"
    traced = run_cli("--collector", relay.collector.address, "trace", trace)
    assert traced.returncode == 0, traced.stderr
    assert sorted(line.split()[-2] for line in traced.stdout.splitlines() if "shipped" in line) == ["3", "3"]
    found = search_json(relay.collector, "--where", f'fields=%"trace_id":"{TRACE:032x}"%')
    assert sorted(e["message"] for e in found) == sorted(['{"error":"disk","code":5,"via":"grpc"}',
                                                          '{"error":"disk","code":5,"via":"http"}',
                                                          "grpc order 0 shipped", "http order 0 shipped"])
    assert len(search_json(relay.collector, "--request-id", f"{TRACE >> 64:016x}*")) == 40


def _json_request(records: list[dict], resource: dict | None = None) -> bytes:
    return json.dumps({"resourceLogs": [{
        "resource": {"attributes": [{"key": k, "value": v} for k, v in (resource or {}).items()]},
        "scopeLogs": [{"scope": {"name": "json.client"}, "logRecords": records}]}]}).encode()


def test_json_bodies_from_an_http_client(relay):
    records = [{"timeUnixNano": "1767225600123456000", "severityNumber": 17, "severityText": "ERROR",
                "body": {"stringValue": "json order failed"},
                "attributes": [{"key": "retries", "value": {"intValue": "3"}},
                               {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"},
                                                                                   {"doubleValue": 1.5}]}}}],
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"},
               {"observedTimeUnixNano": 1767225601000000000, "severityNumber": 9,
                "body": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": False}}]}}}]
    body = _json_request(records, {"service.name": {"stringValue": "json-app"}})
    status, answer, headers = relay.post(body, "application/json")
    assert (status, headers["Content-Type"]) == (200, "application/json"), answer
    assert json.loads(answer) == {}
    status, answer, _ = relay.post(gzip.compress(body.replace(b"json order", b"gzip order")),
                                   "application/json", "gzip")
    assert status == 200, answer
    events = relay.events(4, "--app", "json-app")
    failed = [e for e in events if e["message"].endswith("order failed")]
    assert sorted(e["message"] for e in failed) == ["gzip order failed", "json order failed"]
    for event in failed:
        assert (event["level"], event["time"]) == ("error", "2026-01-01T00:00:00.123456Z")
        assert event["request_id"] == "5b8efff798038103d269b633813fc60c"
        assert event["fields"] == {"retries": 3, "tags": ["a", 1.5], "trace_id": "5b8efff798038103d269b633813fc60c",
                                   "span_id": "eee19b7ec3c1b174", "scope": "json.client", "relay": "relay-1"}
    kv = [e for e in events if e["message"] == '{"k":false}']
    assert [(e["level"], e["time"]) for e in kv] == [("info", "2026-01-01T00:00:01.000000Z")] * 2


def test_partial_success_names_the_rejected_records(relay):
    """Of 60 records: 50 fit max_records_per_request, one has attributes too long for
    max_message_bytes, one is empty; the 48 others are stored, and a long body is cut, not refused."""
    records = [{"body": {"stringValue": f"partial {i}"}} for i in range(47)]
    records.append({"body": {"stringValue": "partial long " + "x" * 2000}})
    records.insert(10, {"body": {"stringValue": "too big"},
                        "attributes": [{"key": "blob", "value": {"stringValue": "y" * 2000}}]})
    records.insert(20, {})
    records += [{"body": {"stringValue": f"over {i}"}} for i in range(10)]
    body = _json_request(records, {"service.name": {"stringValue": "partial-app"}})
    status, answer, _ = relay.post(body, "application/json")
    assert status == 200
    assert json.loads(answer) == {"partialSuccess": {"rejectedLogRecords": "12", "errorMessage": (
        "1 log record(s) rejected: no body, no attributes and no event name; "
        "1 log record(s) rejected: attributes longer than max_message_bytes as JSON; "
        "10 log record(s) rejected: more records in one request than max_records_per_request")}}
    events = relay.events(48, "--app", "partial-app")
    assert [e["message"] for e in events[:47]] == [f"partial {i}" for i in range(47)]
    assert events[47]["truncated"] is True and events[47]["message"] == ("partial long " + "x" * 2000)[:1000]
    # The same over gRPC, with a protobuf response.
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for i in range(52):
        scope.log_records.add().body.string_value = f"grpc partial {i}"
    with grpc.insecure_channel(f"127.0.0.1:{relay.grpc_port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                                     request_serializer=ExportLogsServiceRequest.SerializeToString,
                                     response_deserializer=ExportLogsServiceResponse.FromString)
        response = export(request, timeout=20)
        assert (response.partial_success.rejected_log_records, response.partial_success.error_message) == (
            2, "2 log record(s) rejected: more records in one request than max_records_per_request")
        # A body that is not a request: INVALID_ARGUMENT, counted.
        raw = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
        with pytest.raises(grpc.RpcError) as refused:
            raw(b"\xff\xff\xff", timeout=20)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert relay.metric("fleetlog_agent_receiver_events_rejected_total", listener="otel-http",
                        reason="too_many_records") == 10
    assert relay.metric("fleetlog_agent_receiver_events_rejected_total", listener="otel-grpc",
                        reason="too_many_records") == 2
    assert relay.metric("fleetlog_agent_receiver_refused_total", listener="otel-grpc", reason="bad_protobuf") == 1


def test_hostile_http_bodies_are_answered_and_counted(relay):
    cases = [
        (b"{not json", "application/json", "", 400, "bad_json"),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}', "application/json", "",
         400, "bad_json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "", 400, "bad_json"),
        (b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf", "", 400, "bad_protobuf"),
        (b"hello", "text/plain", "", 415, "unsupported_media_type"),
        (gzip.compress(b"\0" * (50 * 1024 * 1024)), "application/x-protobuf", "gzip", 413, "too_large"),
        (b"not gzip at all", "application/x-protobuf", "gzip", 400, "bad_encoding"),
    ]
    for body, content_type, encoding, status, reason in cases:
        got, answer, _ = relay.post(body, content_type, encoding)
        assert got == status, (body[:60], answer[:300])
        if reason:
            assert relay.metric("fleetlog_agent_receiver_refused_total", listener="otel-http", reason=reason) >= 1, reason
    deep = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":' + b'{"arrayValue":{"values":[' * 200 + \
        b"]}}" * 200 + b"}]}]}]}"
    got, answer, _ = relay.post(deep, "application/json")
    assert got == 400, answer[:300]
    # Still serving.
    status, _, _ = relay.post(_json_request([{"body": {"stringValue": "after the hostile ones"}}]), "application/json")
    assert status == 200
    relay.events(1, "--message", "after the hostile ones")


def _big_request(tag: str, count: int = 100) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "filler"
    scope = resource_logs.scope_logs.add()
    for i in range(count):
        scope.log_records.add().body.string_value = f"{tag} {i:04d} " + "z" * 1000
    return request


def test_a_full_spool_is_answered_retryable_and_the_records_come_when_it_empties(cluster):
    """The collector is away and the spool (1 MiB) fills: gRPC answers UNAVAILABLE with a RetryInfo,
    HTTP 503 with Retry-After, and nothing of a refused request is taken. The SDK's exporters wait
    and retry as told; once the collector comes, every record answered with success is stored once,
    and the retried ones too."""
    from google.rpc import error_details_pb2, status_pb2

    collector = cluster.collector("collector-full", start=False)
    grpc_port, http_port = free_port(), free_port()
    agent = cluster.agent("relay-full", [collector], [
        {"type": "otlp", "name": "full", "grpc_listen": f"127.0.0.1:{grpc_port}",
         "http_listen": f"127.0.0.1:{http_port}", "retry_after": "1s"}],
        spool={"max_bytes": "1MiB"}, batch={"max_bytes": "256KiB", "compression": "none"})
    wait_for(lambda: "otlp listener full-http on" in agent.log(), 20, "the otlp listeners")
    accepted = 0
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                                     request_serializer=ExportLogsServiceRequest.SerializeToString,
                                     response_deserializer=ExportLogsServiceResponse.FromString)
        with pytest.raises(grpc.RpcError) as full:
            for _ in range(50):
                export(_big_request(f"accepted {accepted}"), timeout=20)
                accepted += 1
    assert 3 <= accepted < 10, accepted
    assert full.value.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(full.value.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    info = error_details_pb2.RetryInfo()
    assert status.code == 14 and status.details[0].Unpack(info)
    assert info.retry_delay.seconds == 1
    assert error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]) == info

    body = _big_request("refused over http").SerializeToString()
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/logs", data=body,
                                     headers={"Content-Type": "application/x-protobuf"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=20)
    assert (refused.value.code, refused.value.headers["Retry-After"]) == (503, "1")
    assert status_pb2.Status.FromString(refused.value.read()).code == 14
    for listener in ("full-grpc", "full-http"):
        assert metric_value(agent.metrics(), "fleetlog_agent_receiver_refused_total",
                            {"listener": listener, "reason": "spool_full"}) >= 1

    # The SDK's exporters, sending while the spool is full (50 KB requests, more than the room
    # left): they retry after the delay asked.
    import threading
    senders = [
        threading.Thread(target=_send_with_sdk, args=(
            GrpcLogExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True, timeout=60),
            [LogRecord(severity_number=SeverityNumber.INFO, body=f"sdk grpc waited {i} " + "w" * 5000)
             for i in range(10)])),
        threading.Thread(target=_send_with_sdk, args=(
            HttpLogExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/logs", timeout=60),
            [LogRecord(severity_number=SeverityNumber.INFO, body=f"sdk http waited {i} " + "w" * 5000)
             for i in range(10)])),
    ]
    for sender in senders:
        sender.start()
    wait_for(lambda: sum(metric_value(agent.metrics(), "fleetlog_agent_receiver_refused_total",
                                      {"listener": listener, "reason": "spool_full"})
                         for listener in ("full-grpc", "full-http")) >= 4, 20, "the SDK's requests refused")
    collector.start().wait_ready()
    for sender in senders:
        sender.join(60)
        assert not sender.is_alive()
    stored: list[dict] = []

    def all_stored() -> bool:
        stored[:] = search_json(collector, "--source", "otlp:full", "--order", "asc")
        return len(stored) >= accepted * 100 + 20
    wait_for(all_stored, 45, "every accepted record stored")
    messages = [e["message"].split(" zzzz")[0].split(" wwww")[0] for e in stored]
    expected = [f"accepted {n} {i:04d}" for n in range(accepted) for i in range(100)]
    assert sorted(messages) == sorted(expected + [f"sdk {p} waited {i}" for p in ("grpc", "http") for i in range(10)])
    assert not any("refused" in m for m in messages)


def test_tls_with_client_certificates_names_the_sender_by_its_certificate(relay):
    """With tls.ca set, both listeners require a client certificate the ca signed; the event's host
    is the certificate's name, and the name the resource claims stays a field."""
    def credentials(files) -> grpc.ChannelCredentials:
        ca, key, cert = (pathlib.Path(path).read_bytes() for path in (files.ca, files.key, files.cert))
        return grpc.ssl_channel_credentials(ca, key, cert)
    records = [LogRecord(severity_number=SeverityNumber.INFO, body=f"tls grpc {i}") for i in range(5)]
    _send_with_sdk(GrpcLogExporter(endpoint=f"localhost:{relay.tls_ports['grpc']}",
                                   credentials=credentials(relay.client)), records)
    records = [LogRecord(severity_number=SeverityNumber.INFO, body=f"tls http {i}") for i in range(5)]
    # requests lets REQUESTS_CA_BUNDLE in the environment override the exporter's CA file; not here.
    session = requests.Session()
    session.trust_env = False
    _send_with_sdk(HttpLogExporter(endpoint=f"https://localhost:{relay.tls_ports['http']}/v1/logs",
                                   certificate_file=relay.client.ca, client_certificate_file=relay.client.cert,
                                   client_key_file=relay.client.key, session=session), records)
    events = wait_for(lambda: [found for found in [search_json(relay.collector, "--source", "otlp:otel-tls")]
                               if len(found) >= 10], 30, "10 events over TLS")[0]
    assert sorted(e["message"] for e in events) == sorted([f"tls grpc {i}" for i in range(5)]
                                                          + [f"tls http {i}" for i in range(5)])
    for event in events:
        assert (event["host"], event["fields"]["claimed_host"], event["fields"]["relay"]) == (
            "app-server-3", "pod-17", "relay-1")
    # A certificate from another CA, and none at all, are refused at the handshake.
    with grpc.secure_channel(f"localhost:{relay.tls_ports['grpc']}", credentials(relay.stranger)) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")(b"", timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    import ssl
    context = ssl.create_default_context(cafile=relay.server.ca)
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
        urllib.request.urlopen(urllib.request.Request(f"https://localhost:{relay.tls_ports['http']}/v1/logs", data=b"",
                                                      headers={"Content-Type": "application/x-protobuf"}),
                               timeout=10, context=context).read()


def test_http_connections_are_bounded_and_idle_or_slow_ones_closed(relay):
    def open_now() -> float:
        return relay.metric("fleetlog_agent_receiver_connections", listener="otel-http")
    wait_for(lambda: open_now() == 0, 20, "the earlier clients' connections closed")
    assert_connections_bounded(relay.http_port, 4, open_now, lambda: relay.metric(
        "fleetlog_agent_receiver_refused_total", listener="otel-http", reason="too_many_connections"))
    # Slow senders are bounded by the same timeout: headers that never end, a body that never comes.
    slow_headers = socket.create_connection(("127.0.0.1", relay.http_port), timeout=10)
    slow_body = socket.create_connection(("127.0.0.1", relay.http_port), timeout=10)
    with slow_headers, slow_body:
        slow_headers.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: relay\r\n")
        slow_body.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100\r\n\r\n{")
        assert slow_headers.recv(100) == b""
        assert slow_body.recv(100).startswith(b"HTTP/1.1 408 ")
    assert relay.metric("fleetlog_agent_receiver_refused_total", listener="otel-http", reason="idle_timeout") == 1


def test_requests_held_at_once_are_bounded_and_the_rest_asked_to_retry(cluster):
    """max_concurrent_requests = 2 and a long batch.max_wait: two requests wait for the spool, a
    third is answered retry later (503 with Retry-After; gRPC UNAVAILABLE) without being read."""
    import threading
    collector = cluster.collector("collector-busy")
    grpc_port, http_port = free_port(), free_port()
    agent = cluster.agent("relay-busy", [collector], [
        {"type": "otlp", "name": "few", "grpc_listen": f"127.0.0.1:{grpc_port}",
         "http_listen": f"127.0.0.1:{http_port}", "max_concurrent_requests": 2}], batch={"max_wait": "3s"})
    wait_for(lambda: "otlp listener few-http on" in agent.log(), 20, "the otlp listeners")
    url = f"http://127.0.0.1:{http_port}/v1/logs"

    def post(text: str) -> tuple[int, str | None]:
        body = _json_request([{"body": {"stringValue": text}}])
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Retry-After"]
        except (ConnectionError, urllib.error.URLError):
            return 0, None                          # no answer: the connection was closed
    answers: list[tuple[int, str | None]] = []
    waiting = [threading.Thread(target=lambda i=i: answers.append(post(f"held {i}"))) for i in range(2)]
    for thread in waiting:
        thread.start()
    wait_for(lambda: metric_value(agent.metrics(), "fleetlog_agent_receiver_events_received_total",
                                  {"listener": "few-http"}) == 2, 10, "two requests waiting for the spool")
    assert post("third") == (503, "5")
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as busy:
            channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")(b"", timeout=10)
        assert busy.value.code() == grpc.StatusCode.UNAVAILABLE
    for thread in waiting:
        thread.join(20)
    assert answers == [(200, None), (200, None)]
    assert (metric_value(agent.metrics(), "fleetlog_agent_receiver_refused_total", {"listener": "few-http",
                                                                                    "reason": "busy"}),
            metric_value(agent.metrics(), "fleetlog_agent_receiver_refused_total", {"listener": "few-grpc",
                                                                                    "reason": "busy"})) == (1, 1)
    stored = wait_for(lambda: [found for found in [search_json(collector, "--source", "otlp:few")] if len(found) == 2],
                      20, "the two held requests stored")[0]
    assert sorted(e["message"] for e in stored) == ["held 0", "held 1"]

    # A clean stop while two requests wait for the spool: they are not answered (the senders see a
    # retryable failure), their records are sealed into the spool, and stored once after the restart.
    def grpc_export(text: str) -> str:
        request = ExportLogsServiceRequest()
        request.resource_logs.add().scope_logs.add().log_records.add().body.string_value = text
        try:
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")(
                    request.SerializeToString(), timeout=20)
            return "ok"
        except grpc.RpcError as exc:
            return exc.code().name
    results: list[object] = []
    waiting = [threading.Thread(target=lambda: results.append(grpc_export("at stop grpc"))),
               threading.Thread(target=lambda: results.append(post("at stop http")[0]))]
    for thread in waiting:
        thread.start()
    wait_for(lambda: sum(metric_value(agent.metrics(), "fleetlog_agent_receiver_events_received_total",
                                      {"listener": name}) for name in ("few-http", "few-grpc")) == 4, 10,
             "two more requests waiting")
    assert agent.stop() == 0
    for thread in waiting:
        thread.join(20)
    assert sorted(map(str, results)) == ["0", "UNAVAILABLE"]      # no answer over HTTP; retryable over gRPC
    agent.start()
    stored = wait_for(lambda: [found for found in [search_json(collector, "--source", "otlp:few")] if len(found) >= 4],
                      20, "the records of the stop stored")[0]
    assert sorted(e["message"] for e in stored) == ["at stop grpc", "at stop http", "held 0", "held 1"]
    assert "Traceback" not in agent.log() and "ERROR" not in agent.log()
