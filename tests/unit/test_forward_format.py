"""Syslog formatting (RFC 5424, RFC 3164, RFC 6587 framing), forwarder filters and the CRUD
category, cursor files and forwarder config checks — pure functions, no daemons."""

from __future__ import annotations

import pytest

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.forward.cursor import CursorFile
from fleetlog.collector.forward.filters import ForwarderFilters, crud_category
from fleetlog.collector.forward.rfc3164 import format_rfc3164
from fleetlog.collector.forward.rfc5424 import format_rfc5424, structured_data
from fleetlog.collector.forward.syslog_common import facility_code, frame_lf, frame_octet_counting
from fleetlog.common.config import build_config
from fleetlog.common.errors import ConfigError, StorageError


def _event(**overrides):
    event = {"seq": 12, "id": "0f" * 16, "time": "2025-12-02T14:30:45.000042Z", "host": "web-1",
             "app": "billing", "pid": 4711, "action": "user.create", "log_type": "audit", "level": "warning",
             "request_id": "r-1", "user": "alice", "namespace": "payments", "tier": "security",
             "message": "created user bob", "fields": {}}
    event.update(overrides)
    return event


def test_rfc5424_header_and_structured_data():
    line = format_rfc5424(_event(), facility_code("local0"), "fleetlog")
    assert line == ('<132>1 2025-12-02T14:30:45.000042Z web-1 billing 4711 user.create '
                    '[fleetlog@32473 request_id="r-1" user="alice" namespace="payments" log_type="audit" '
                    f'tier="security" id="{"0f" * 16}" seq="12"] created user bob')


def test_rfc5424_escapes_param_values_and_sanitises_header_fields():
    event = _event(request_id='a"b\\c]d', user="zoë", host="web 1", app="", pid=None, action="",
                   fields={"k]ey=x": 'v"]', "n": 3, "obj": {"a": [1, 2]}})
    line = format_rfc5424(event, facility_code("auth"), "fleetlog")
    assert line.startswith("<36>1 2025-12-02T14:30:45.000042Z web_1 fleetlog - audit [fleetlog@32473 ")
    assert 'request_id="a\\"b\\\\c\\]d" user="zoë"' in line
    assert '[fields@32473 k_ey_x="v\\"\\]" n="3" obj="{\\"a\\":[1,2\\]}"]' in line


def test_rfc5424_bom_only_for_non_ascii_and_nil_values():
    assert format_rfc5424(_event(message="grüße"), 16, "x").endswith("] \ufeffgrüße")
    assert format_rfc5424(_event(message="plain"), 16, "x").endswith("] plain")
    bare = _event(request_id=None, user=None, namespace="", log_type="", tier="", id="", seq=None, host="",
                  action="", app="", pid=None)
    assert structured_data(bare) == "[fleetlog@32473]"
    assert format_rfc5424(bare, 16, "").startswith("<132>1 2025-12-02T14:30:45.000042Z - - - - [fleetlog@32473] ")
    long = format_rfc5424(_event(action="A" * 40, app="B" * 60), 16, "x")
    assert f" {'B' * 48} 4711 {'A' * 32} " in long


def test_rfc3164():
    assert format_rfc3164(_event(time="2025-12-02T04:05:06.1Z"), facility_code("local7"), "fleetlog") == (
        "<188>Dec  2 04:05:06 web-1 billing[4711]: created user bob")
    assert format_rfc3164(_event(app="my app!", pid=None, level="debug"), 1, "fleetlog").startswith(
        "<15>Dec  2 14:30:45 web-1 my_app_: ")


def test_framing():
    message = "x\ny €".encode()
    assert frame_octet_counting(message) == b"7 x\ny \xe2\x82\xac"
    assert frame_lf(b"a\nb\rc") == b"a#012b#015c\n"


@pytest.mark.parametrize("action, category", [
    ("user.create", "create"), ("Admin.EventLog.Note", "create"), ("audit/search", "read"),
    ("InvoiceDelete", "delete"), ("user.password.reset", "update"), ("PATCH /users/1", "update"),
    ("order_removed", "delete"), ("report.view", "read"), ("heartbeat", None), ("", None), (None, None),
])
def test_crud_category(action, category):
    assert crud_category(action) == category


def test_event_filter():
    config = build_config(CollectorConfig, {"forwarders": [{
        "type": "console", "name": "c", "min_level": "warning", "log_types": ["audit", "sec*"],
        "actions": ["create", "delete"], "include": [{"field": "host", "pattern": "web-*"}],
        "exclude": [{"field": "user", "pattern": "svc-*"}, {"field": "fields.env", "pattern": "test"}]}]},
        "collector.toml")
    accepts = config.forwarders[0].filters.accepts
    assert accepts(_event())
    assert accepts(_event(level="error", log_type="security", action="Invoice.Delete"))
    assert not accepts(_event(level="notice"))
    assert not accepts(_event(log_type="application"))
    assert not accepts(_event(action="report.view"))
    assert not accepts(_event(action=""))
    assert not accepts(_event(host="db-1"))
    assert not accepts(_event(user="svc-backup"))
    assert not accepts(_event(fields={"env": "test"}))
    assert accepts(_event(fields={"env": "prod"}))
    assert ForwarderFilters().accepts(_event(level="debug", action=""))


def test_cursor_file_round_trip_and_damage(tmp_path):
    cursor = CursorFile(tmp_path / "forwarders", "siem/main")
    assert cursor.load() == 0
    cursor.save(41)
    cursor.save(42)
    assert CursorFile(tmp_path / "forwarders", "siem/main").load() == 42
    assert cursor.path.name == "siem_main.cursor"
    cursor.path.write_text("garbage")
    with pytest.raises(StorageError, match="unreadable forwarder cursor"):
        cursor.load()


def _config_error(forwarder):
    with pytest.raises(ConfigError) as info:
        build_config(CollectorConfig, {"forwarders": [forwarder]}, "collector.toml")
    return str(info.value)


@pytest.mark.parametrize("forwarder, message", [
    ({"type": "syslog", "name": "s", "facility": "local9"},
     "collector.toml: forwarders[0].facility: unknown facility 'local9'"),
    ({"type": "syslog", "name": "s", "port": 70000},
     "collector.toml: forwarders[0].port: expected a port number 1-65535, got 70000"),
    ({"type": "syslog", "name": "s", "protocol": "udp", "tls": {"ca": "x"}},
     "collector.toml: forwarders[0].tls: only used with protocol = \"tls\", not 'udp'"),
    ({"type": "syslog", "name": "s", "protocol": "quic"}, "collector.toml: forwarders[0].protocol: expected"),
    ({"type": "jsonl", "name": "j"}, "collector.toml: forwarders[0].port: expected a port number"),
    ({"type": "file", "name": "f"}, "collector.toml: forwarders[0].path: required"),
    ({"type": "file", "name": "f", "path": "/x", "rotate_bytes": "ten"}, "collector.toml: forwarders[0].rotate_bytes"),
    ({"type": "console", "name": "c", "actions": ["erase"]}, "collector.toml: forwarders[0].actions[0]: expected"),
    ({"type": "kafka", "name": "k"}, "collector.toml: forwarders[0].type: "),
])
def test_forwarder_config_errors(forwarder, message):
    assert _config_error(forwarder).startswith(message)


def test_rotate_bytes_accepts_sizes():
    config = build_config(CollectorConfig, {"forwarders": [{"type": "file", "name": "f", "path": "/x",
                                                            "rotate_bytes": "1MiB"}]}, "collector.toml")
    assert config.forwarders[0].rotate_bytes == 1024 * 1024
