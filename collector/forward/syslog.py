"""The `syslog` forwarder: RFC 5424 or RFC 3164 over UDP, TCP (octet-counting or LF framing,
RFC 6587) or TLS (RFC 5425, which uses octet-counting)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fleetlog.collector.forward.filters import ForwarderFilters
from fleetlog.collector.forward.rfc3164 import format_rfc3164
from fleetlog.collector.forward.rfc5424 import format_rfc5424
from fleetlog.collector.forward.syslog_common import facility_code, frame_lf, frame_octet_counting
from fleetlog.collector.forward.transport import (
    DatagramConnection,
    Endpoint,
    StreamConnection,
    client_tls_context,
)
from fleetlog.common.config import FieldError, Flatten
from fleetlog.common.tls import TlsFiles


@dataclass(frozen=True)
class SyslogForwarderConfig:
    type: Literal["syslog"]
    name: str
    endpoint: Annotated[Endpoint, Flatten()] = Endpoint(port=514)
    protocol: Literal["udp", "tcp", "tls"] = "tcp"
    format: Literal["rfc5424", "rfc3164"] = "rfc5424"
    framing: Literal["octet-counting", "lf"] = "octet-counting"
    facility: str = "local0"
    app_name: str = "fleetlog"
    tls: TlsFiles | None = None
    filters: Annotated[ForwarderFilters, Flatten()] = ForwarderFilters()

    def validate(self) -> None:
        try:
            facility_code(self.facility)
        except ValueError as exc:
            raise FieldError("facility", str(exc)) from None
        self.endpoint.check_port()
        if self.tls is not None and self.protocol != "tls":
            raise FieldError("tls", f'only used with protocol = "tls", not {self.protocol!r}')


def _cut_utf8(data: bytes, limit: int) -> bytes:
    """At most `limit` bytes, never ending inside a UTF-8 sequence."""
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode()


class SyslogSink:
    def __init__(self, config: SyslogForwarderConfig):
        self.config = config
        self.facility = facility_code(config.facility)
        self.format = format_rfc5424 if config.format == "rfc5424" else format_rfc3164
        # RFC 5425 mandates octet-counting over TLS; `framing` applies to plain TCP.
        self.frame = frame_lf if config.framing == "lf" and config.protocol == "tcp" else frame_octet_counting
        if config.protocol == "udp":
            self.connection: Any = DatagramConnection(config.endpoint.host, config.endpoint.port)
        else:
            tls = None
            if config.protocol == "tls":
                files = config.tls
                tls = client_tls_context(files.ca if files else None, files.cert if files else None,
                                         files.key if files else None)
            self.connection = StreamConnection(config.endpoint.host, config.endpoint.port, tls)
        self.target = self.connection.target

    def encode(self, event: dict[str, Any]) -> bytes:
        return self.format(event, self.facility, self.config.app_name).encode("utf-8", "replace")

    def send(self, events: list[dict[str, Any]]) -> None:
        if isinstance(self.connection, DatagramConnection):
            limit = DatagramConnection.MAX_DATAGRAM
            self.connection.send_all([_cut_utf8(self.encode(e), limit) for e in events])
        else:
            self.connection.send(b"".join(self.frame(self.encode(e)) for e in events))

    def delivered(self, wait: bool) -> bool:
        if isinstance(self.connection, DatagramConnection):
            return True     # UDP confirms nothing: sent is as delivered as it gets
        return self.connection.delivered(wait)

    def abort(self) -> None:
        if isinstance(self.connection, StreamConnection):
            self.connection.abort()

    def close(self) -> None:
        self.connection.close()
