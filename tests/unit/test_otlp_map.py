"""The OTLP receiver's decoding and mapping (agent/sources/otlp_map.py) and its config: each field of
the logs data model onto the event, exact; OTLP/JSON's hex ids; bodies that are not requests."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from fleetlog.agent.sources.otlp import OtlpSourceConfig
from fleetlog.agent.sources.otlp_map import (
    OtlpDecodeError,
    decode_json,
    decode_protobuf,
    level_of,
    map_request,
)
from fleetlog.common.config import FieldError
from fleetlog.common.tls import TlsFiles


def _request() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for key, value in (("service.name", "shop"), ("host.name", "pod-1"), ("cloud.region", "eu")):
        resource_logs.resource.attributes.add(key=key).value.string_value = value
    resource_logs.resource.attributes.add(key="process.pid").value.int_value = 77
    scope = resource_logs.scope_logs.add()
    scope.scope.name = "orders"
    return request


def test_a_record_maps_onto_every_event_field():
    request = _request()
    record = request.resource_logs[0].scope_logs[0].log_records.add()
    record.time_unix_nano = 1_767_225_600_123_456_789
    record.observed_time_unix_nano = 1
    record.severity_number = 18           # ERROR2
    record.body.string_value = "payment failed"
    record.trace_id = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    record.span_id = bytes.fromhex("00f067aa0ba902b7")
    record.event_name = "payment.failed"
    for key, value in (("user", "alice"), ("http.route", "/pay")):
        record.attributes.add(key=key).value.string_value = value
    record.attributes.add(key="amount").value.double_value = 9.5
    nested = record.attributes.add(key="cart").value.kvlist_value.values.add(key="items")
    nested.value.array_value.values.add().int_value = 3
    mapped = map_request(request, 1000, 10, 555)
    (got,) = mapped.records
    assert (got.position, got.app, got.pid, got.flags, got.read_time_us) == (0, "shop", 77, 0, 555)
    parsed = got.parsed
    assert (parsed.time_us, parsed.level, parsed.message) == (1_767_225_600_123_456, 3, "payment failed")
    assert (parsed.request_id, parsed.user, parsed.action, parsed.claimed_host) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "alice", "payment.failed", "pod-1")
    assert parsed.fields == {"http.route": "/pay", "amount": 9.5, "cart": {"items": [3]},
                             "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
                             "scope": "orders", "resource": {"cloud.region": "eu"}}
    assert not mapped.rejected and mapped.error_message() == ""


@pytest.mark.parametrize(("number", "text", "level"), [
    (1, "", 7), (4, "", 7), (5, "", 7), (8, "", 7), (9, "", 6), (12, "", 6), (13, "", 4), (16, "", 4),
    (17, "", 3), (20, "", 3), (21, "", 0), (24, "", 0),
    (0, "WARN", 4), (0, "Fatal", 0), (0, "informational", 6), (0, "nonsense", None), (0, "", None),
    (25, "error", 3), (9, "error", 6),     # the number wins when it is a severity
])
def test_severity_number_ranges_then_severity_text(number, text, level):
    assert level_of(number, text) == level


def test_bodies_times_and_ids_of_every_kind():
    request = _request()
    records = request.resource_logs[0].scope_logs[0].log_records
    records.add().body.kvlist_value.values.add(key="k").value.bool_value = True
    records.add().body.int_value = 42
    records.add().body.bytes_value = b"\x00\x01"
    records.add().body.double_value = float("nan")
    attributes_only = records.add()
    attributes_only.attributes.add(key="request_id").value.int_value = 5
    attributes_only.observed_time_unix_nano = 2_000_000
    bad = records.add()
    bad.body.string_value = "short ids"
    bad.trace_id = b"\x01" * 5
    bad.span_id = b"\0" * 8                # all zeros: no span
    mapped = map_request(request, 1000, 10, 9)
    got = [(r.parsed.message, r.parsed.time_us, r.parsed.request_id) for r in mapped.records]
    # bytes as base64 text, a double JSON cannot hold by its name
    assert got == [('{"k":true}', None, ""), ("42", None, ""), ("AAE=", None, ""), ("nan", None, ""),
                   ("", 2000, "5"), ("short ids", None, "")]
    assert "trace_id" not in mapped.records[-1].parsed.fields and "span_id" not in mapped.records[-1].parsed.fields
    assert mapped.bad_ids == 1


def test_refused_records_are_counted_with_their_reason():
    request = _request()
    records = request.resource_logs[0].scope_logs[0].log_records
    records.add()                                                    # empty
    records.add().attributes.add(key="blob").value.string_value = "x" * 500   # fields over the bound
    records.add().body.string_value = "é" * 300                      # long body: cut, kept
    for i in range(5):
        records.add().body.string_value = f"r{i}"
    mapped = map_request(request, 200, 5, 0)
    assert [r.parsed.message for r in mapped.records] == ["é" * 100, "r0", "r1"]
    assert mapped.records[0].flags == 1 and mapped.truncated == 1
    assert [r.position for r in mapped.records] == [0, 1, 2]
    assert dict(mapped.rejected) == {"empty": 1, "fields_too_long": 1, "too_many_records": 3}
    assert mapped.error_message() == (
        "1 log record(s) rejected: no body, no attributes and no event name; "
        "1 log record(s) rejected: attributes longer than max_message_bytes as JSON; "
        "3 log record(s) rejected: more records in one request than max_records_per_request")


def test_otlp_json_ids_are_hex_and_keys_lower_camel_case():
    document = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name",
                                                               "value": {"stringValue": "web"}}]},
                                  "scopeLogs": [{"logRecords": [{
                                      "timeUnixNano": "1767225600000000000", "severityNumber": 9,
                                      "body": {"stringValue": "hi"}, "traceId": "5B8EFFF798038103D269B633813FC60C",
                                      "spanId": "eee19b7ec3c1b174", "futureField": 1,
                                      "attributes": [{"key": "n", "value": {"intValue": "12"}}]}]}]}]}
    request = decode_json(json.dumps(document).encode())
    (record,) = map_request(request, 1000, 10, 0).records
    assert (record.app, record.parsed.message, record.parsed.level, record.parsed.time_us) == (
        "web", "hi", 6, 1_767_225_600_000_000)
    assert record.parsed.fields == {"n": 12, "trace_id": "5b8efff798038103d269b633813fc60c",
                                    "span_id": "eee19b7ec3c1b174"}
    # The same request as protobuf maps the same.
    assert map_request(decode_protobuf(request.SerializeToString()), 1000, 10, 0).records == [record]


@pytest.mark.parametrize(("body", "reason"), [
    (b"{", "bad_json"), (b"[1]", "bad_json"), (b'{"resourceLogs": 5}', "bad_json"),
    (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]}', "bad_json"),
    (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}', "bad_json"),
    (b"[" * 50_000, "bad_json"), (b"\xff\xfe", "bad_json"),
])
def test_json_that_is_not_a_request(body, reason):
    with pytest.raises(OtlpDecodeError) as caught:
        decode_json(body)
    assert caught.value.reason == reason


def test_protobuf_that_is_not_a_request():
    for body in (b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05\x12\x03\x1a\x01", b"\x0a" * 300):
        with pytest.raises(OtlpDecodeError) as caught:
            decode_protobuf(body)
        assert caught.value.reason == "bad_protobuf"


def test_config_defaults_and_errors():
    config = OtlpSourceConfig(type="otlp")
    assert config.listens == {"grpc": "127.0.0.1:4317", "http": "127.0.0.1:4318"}
    assert OtlpSourceConfig(type="otlp", http_listen=":4318").listens == {"http": ":4318"}
    for kwargs, key in (({"grpc_listen": "nowhere"}, "grpc_listen"), ({"http_listen": "h:0"}, "http_listen"),
                        ({"tls": TlsFiles(cert="c")}, "tls"), ({"max_message_bytes": 10}, "max_message_bytes"),
                        ({"max_request_bytes": 100}, "max_request_bytes"),
                        ({"max_records_per_request": 0}, "max_records_per_request"),
                        ({"max_connections": 0}, "max_connections"), ({"idle_timeout": 0}, "idle_timeout"),
                        ({"max_concurrent_requests": 0}, "max_concurrent_requests")):
        with pytest.raises(FieldError) as caught:
            OtlpSourceConfig(type="otlp", **kwargs).validate()
        assert caught.value.key == key

    # As agent.toml writes it: sizes and durations in words.
    from fleetlog.agent.config import AgentConfig
    from fleetlog.common.config import build_config
    table = {"type": "otlp", "grpc_listen": "0.0.0.0:4317", "http_listen": "0.0.0.0:4318", "name": "apps",
             "namespace": "web", "log_type": "web", "max_message_bytes": "8KiB", "max_request_bytes": "8MiB",
             "retry_after": "10s"}
    (source,) = build_config(AgentConfig, {"sources": [table]}, "agent.toml").sources
    assert isinstance(source, OtlpSourceConfig)
    assert (source.name, source.namespace, source.log_type, source.max_message_bytes, source.max_request_bytes,
            source.retry_after) == ("apps", "web", "web", 8192, 8 * 1024 * 1024, 10.0)


def test_a_listen_address_without_host_is_every_address(tmp_path):
    """":PORT" listens on every address, as a syslog listener's does; gRPC needs it spelled out."""
    import asyncio
    import socket

    from fleetlog.agent.sources.otlp import OtlpSource

    async def bind() -> None:
        source = OtlpSource(OtlpSourceConfig(type="otlp", grpc_listen=":4317"), tmp_path)
        server, port = await source.start_grpc(source, ":0", "otlp-grpc", None)
        try:
            assert port > 0
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        finally:
            await server.stop(0)
    asyncio.run(bind())
