"""What the RFC 5424 and RFC 3164 formatters write is a frame a real rsyslog parses, whatever an
event holds (issue 20): 200 events drawn the way the fuzz targets draw them (control characters,
quotes, backslashes, brackets, `=` and spaces in field names, invalid UTF-8 turned into U+FFFD,
years 0001-9999), sent over TCP with octet-counting (5424) and LF framing (3164)."""

from __future__ import annotations

import random
import re
import socket

from fleetlog.collector.forward.rfc3164 import format_rfc3164
from fleetlog.collector.forward.rfc5424 import BOM, format_rfc5424, header_field, structured_data
from fleetlog.collector.forward.syslog_common import frame_lf, frame_octet_counting
from tests.fuzz.targets import Input, _event
from tests.rsyslog_receiver import RsyslogReceiver

COUNT = 200


def _visible(text: str) -> str:
    """Text without control characters: rsyslog writes NUL as `#000` and may drop other control
    characters; whether it parsed the frame shows in everything else."""
    return re.sub(r"#0[0-3]\d|[\x00-\x1f\x7f]", "", text)


def _events() -> list[dict]:
    rng = random.Random(20)
    return [_event(Input(rng.randbytes(rng.randrange(20, 400)))) for _ in range(COUNT)]


def _send(port: int, frames: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(frames))


def test_rsyslog_parses_every_fuzzed_event_in_both_formats(tmp_path):
    events = _events()
    rsyslog = RsyslogReceiver(tmp_path / "rsyslog", udp=False, tcp_inputs=("tcp", "tcp_lf")).start()
    try:
        _send(rsyslog.tcp_ports["tcp"], [frame_octet_counting(format_rfc5424(e, 16, "fleetlog").encode("utf-8", "replace"))
                                          for e in events])
        _send(rsyslog.tcp_ports["tcp_lf"], [frame_lf(format_rfc3164(e, 16, "fleetlog").encode("utf-8", "replace"))
                                             for e in events])
        got_5424 = rsyslog.wait_received("tcp", COUNT)
        got_3164 = rsyslog.wait_received("tcp_lf", COUNT)
    finally:
        rsyslog.stop()
    assert len(got_5424) == COUNT and len(got_3164) == COUNT
    for event, parsed in zip(events, got_5424):
        assert parsed["hostname"] == header_field(event["host"], 255)
        assert parsed["app_name"] == header_field(event["app"] or "fleetlog", 48)
        assert parsed["msgid"] == header_field(event["action"] or event["log_type"], 32)
        assert _visible(parsed["structured_data"]) == _visible(structured_data(event))
        message = event["message"]
        assert _visible(parsed["msg"]) == _visible(message if message.isascii() else BOM + message)
        if event["time"] < "2100":
            assert parsed["timestamp"] == event["time"]
    for event, parsed in zip(events, got_3164):
        assert parsed["hostname"] == (re.sub(r"[^A-Za-z0-9._-]", "_", event["host"]).rstrip("._-") or "unknown")
        assert parsed["syslogtag"].endswith(":")
