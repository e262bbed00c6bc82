"""The `jsonl` forwarder: one JSON object per line (SPEC §3 field names) over TCP, as Vector's
`socket` sink with newline-delimited JSON or Logstash's `json_lines` input expect."""

from __future__ import annotations

from typing import Any

from fleetlog.collector.config import JsonlForwarderConfig
from fleetlog.collector.forward.transport import StreamConnection
from fleetlog.common.event import to_json


class JsonlSink:
    def __init__(self, config: JsonlForwarderConfig):
        self.connection = StreamConnection(config.host, config.port)
        self.target = self.connection.target

    def send(self, events: list[dict[str, Any]]) -> None:
        # to_json never emits a raw newline (json escapes it), so one line is one event.
        self.connection.send("".join(to_json(e) + "\n" for e in events).encode())

    def delivered(self, wait: bool) -> bool:
        return self.connection.delivered(wait)

    def abort(self) -> None:
        if isinstance(self.connection, StreamConnection):
            self.connection.abort()

    def close(self) -> None:
        self.connection.close()
