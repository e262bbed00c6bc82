"""The `jsonl` forwarder: one JSON object per line (contract §3 field names) over TCP, as Vector's
`socket` sink with newline-delimited JSON or Logstash's `json_lines` input expect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fleetlog.collector.forward.filters import ForwarderFilters
from fleetlog.collector.forward.transport import Endpoint, StreamConnection
from fleetlog.common.config import Flatten
from fleetlog.common.event import to_json


@dataclass(frozen=True)
class JsonlForwarderConfig:
    type: Literal["jsonl"]
    name: str
    endpoint: Annotated[Endpoint, Flatten()] = Endpoint(port=0)    # 0: none, check_port asks for one
    filters: Annotated[ForwarderFilters, Flatten()] = ForwarderFilters()

    def validate(self) -> None:
        self.endpoint.check_port()


class JsonlSink:
    def __init__(self, config: JsonlForwarderConfig):
        self.connection = StreamConnection(config.endpoint.host, config.endpoint.port)
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
