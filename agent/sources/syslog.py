"""The syslog receiver: a source that listens (UDP, TCP, TLS) for senders that run no agent.

`[[sources]] type = "syslog"` (contract §10). Messages are parsed by syslog_parse, split out of
streams by syslog_framing, and handed to the agent's normal path (batcher -> disk spool ->
shipper) like a file's lines, so a relayed message gets the spool, backpressure, thresholds,
filters and exactly-once storage from the spool on.

Origin: the event's host is the sender as this listener knows it: the peer's address, or with
TLS the client certificate's CN (else first DNS SAN) when one was presented. It travels as the
chunk's `relayed_host`; the collector stores it as `host` and this agent as `fields.relay`. The
HOSTNAME the message claims becomes `fields.claimed_host` (when it differs).

Identity: syslog has no position to resume from; each run of a listener gets a random source key
and numbers its messages from 0, so (host, key, position) is unique and a batch re-sent from the
spool is stored once. What a sender handed over before it reached the spool (up to
`batch.max_wait` plus a flush) is lost by a kill -9, as with any syslog receiver: the protocol
has no acknowledgement.

Backpressure: received messages wait in a bounded queue (MAX_PENDING messages, MAX_PENDING_BYTES)
for the batcher. When it
is full (the spool is full, `when_full = "block"`), TCP and TLS connections stop reading, so the
senders' TCP windows close and they buffer; UDP datagrams are dropped and counted
(`receiver_events_dropped_total{reason="queue_full"}`), since UDP has no way to say "wait".

Bounds: `max_message_bytes` (longer messages are cut and flagged truncated, like a file's long
lines), `max_connections` per listener (more are refused and counted), `idle_timeout` (a
connection silent that long is closed), a TLS handshake bounded by the same timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import pathlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fleetlog.agent.metrics import ReceiverMetrics
from fleetlog.agent.sources.base import Emit, Record, SourceBatch
from fleetlog.agent.sources.syslog_native import StreamReader, datagram
from fleetlog.agent.sources.syslog_records import Received
from fleetlog.common.config import Duration, FieldError, LevelName, Size
from fleetlog.common.errors import ConfigError
from fleetlog.common.event_filter import EventFilter, FieldPattern
from fleetlog.common.levels import Level
from fleetlog.common.timefmt import now_us
from fleetlog.common.tls import TlsFiles

log = logging.getLogger("fleetlog.agent.syslog")

DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}
READ_SIZE = 64 * 1024
MAX_PENDING = 20_000            # messages received, not yet handed to the batcher
MAX_PENDING_BYTES = 8 * 1024 * 1024   # ... and their bytes
# A SourceBatch at most this big: the batcher seals after the chunk that crosses batch.max_bytes, and a
# sealed batch must stay well under the collector's 4 MiB message limit.
EMIT_BYTES = 256 * 1024
EMIT_RECORDS = 5000
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
BIND_RETRY = 5.0                # seconds between attempts to listen on an address that is taken


@dataclass(frozen=True)
class SyslogSourceConfig:
    type: Literal["syslog"]
    listen: str                                  # HOST:PORT (":514" = every address)
    protocol: Literal["udp", "tcp", "tls"] = "udp"
    name: str = ""                               # the listener's name in metrics; default syslog-PROTOCOL-PORT
    tls: TlsFiles | None = None                  # cert + key; ca set = client certificates required
    namespace: str = ""                          # default: the agent's namespace
    log_type: str = "system"
    max_message_bytes: Size = 64 * 1024
    max_connections: int = 1000
    idle_timeout: Duration = 300.0
    min_level: LevelName = Level.DEBUG
    include: tuple[FieldPattern, ...] = ()
    exclude: tuple[FieldPattern, ...] = ()

    def validate(self) -> None:
        port = self.listen.rpartition(":")[2]
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise FieldError("listen", f"expected HOST:PORT, got {self.listen!r}")
        if self.protocol == "tls":
            if self.tls is None or not self.tls.cert or not self.tls.key:
                raise FieldError("tls", 'protocol = "tls" needs tls = { cert, key } (and ca to require '
                                 "client certificates)")
        elif self.tls is not None:
            raise FieldError("tls", f'only for protocol = "tls", not {self.protocol!r}')
        check_listener_bounds(self.max_message_bytes, self.max_connections, self.idle_timeout)

    @property
    def listener(self) -> str:
        return self.name or f"syslog-{self.protocol}-{self.listen.rpartition(':')[2]}"


def check_listener_bounds(max_message_bytes: int, max_connections: int, idle_timeout: float) -> None:
    """The bounds every receiver's listener has (FieldError naming the key)."""
    if max_message_bytes < 64:
        raise FieldError("max_message_bytes", "must be at least 64 bytes")
    if max_connections < 1:
        raise FieldError("max_connections", "must be at least 1")
    if idle_timeout <= 0:
        raise FieldError("idle_timeout", "must be more than 0")


def run_identity(kind: str, name: str) -> tuple[str, str]:
    """A receiver's source label, and the source key of this run of it: a new random key each run,
    so its positions (numbered from 0) never meet an earlier run's in the collector's dedup."""
    return f"{kind}:{name}", f"{kind}:{name}:{os.urandom(8).hex()}"



def peer_host(address: Any) -> str:
    """A peer address as text: IPv4-mapped IPv6 addresses as plain IPv4."""
    text = str(address[0]) if isinstance(address, tuple) and address else str(address or "")
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def certificate_name(ssl_object: Any) -> str:
    """CN, else the first DNS SAN, of the verified client certificate; "" without one."""
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    if not cert:
        return ""
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and value:
                return str(value)
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "DNS" and value:
            return str(value)
    return ""


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS 1.2+ server context; with `ca`, a client certificate signed by it is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(files.cert), str(files.key))
        if files.ca:
            context.load_verify_locations(files.ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"agent.toml: syslog tls: cannot load {files.cert}, {files.key} or {files.ca}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    return context


def _slices(records: list[Record]) -> list[tuple[list[Record], int]]:
    """Records cut into runs of at most EMIT_RECORDS and about EMIT_BYTES of message, with their sizes."""
    out: list[tuple[list[Record], int]] = []
    start, size = 0, 0
    for i, record in enumerate(records):
        size += len(record.parsed.message)
        if size >= EMIT_BYTES or i + 1 - start >= EMIT_RECORDS:
            out.append((records[start:i + 1], size))
            start, size = i + 1, 0
    if start < len(records):
        out.append((records[start:], size))
    return out


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, source: SyslogSource):
        self.source = source

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.source.receive_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("syslog udp: %s", exc)


class SyslogSource:
    def __init__(self, config: SyslogSourceConfig, state_dir: pathlib.Path,
                 on_read: Callable[[str, int], None] | None = None, metrics: ReceiverMetrics | None = None):
        self.config = config
        self.name = config.listener
        self.label, self.source_key = run_identity("syslog", self.name)
        self.on_read = on_read or (lambda source, n: None)
        self.metrics = metrics or ReceiverMetrics()
        self.metrics.listener(self.name)
        self.filters = EventFilter(config.include, config.exclude)
        self._tls = server_context(config.tls) if config.protocol == "tls" and config.tls else None
        self._position = 0
        self._pending: dict[str, list[Record]] = {}
        self._queued = 0               # received and not yet emitted
        self._queued_bytes = 0
        self._has_data = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._connections: set[asyncio.StreamWriter] = set()
        self.bound: tuple[str, int] | None = None   # the address listened on, once listening

    # -- receiving -------------------------------------------------------------------------

    def _take(self, host: str, received: Received) -> None:
        """Queue one read's records for the batcher; count what was malformed."""
        metrics, name = self.metrics, self.name
        for reason, count in received.problems.items():
            metrics.malformed.labels(name, reason).inc(count)
        records = received.records
        if not records:
            return
        self._pending.setdefault(host, []).extend(records)
        self._position += len(records)
        self._queued += len(records)
        self._queued_bytes += received.chars
        metrics.received.labels(name).inc(len(records))
        self._has_data.set()
        if self._full():
            self._room.clear()

    def _full(self) -> bool:
        return self._queued >= MAX_PENDING or self._queued_bytes >= MAX_PENDING_BYTES

    def receive_datagram(self, data: bytes, addr: Any) -> None:
        if self._full():
            self.metrics.dropped.labels(self.name, "queue_full").inc()
            return
        self._take(peer_host(addr), datagram(data, self.config.max_message_bytes, self._position, now_us(),
                                             dt.datetime.now(dt.UTC)))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.config.max_connections:
            self.metrics.refused.labels(self.name, "too_many_connections").inc()
            writer.transport.abort()
            return
        self._connections.add(writer)
        self.metrics.connections.labels(self.name).inc()
        try:
            await self._read_connection(reader, writer)
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            log.debug("syslog %s: connection ended: %s", self.name, exc)
        finally:
            self._connections.discard(writer)
            self.metrics.connections.labels(self.name).dec()
            writer.transport.abort()

    async def _read_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = peer_host(writer.get_extra_info("peername"))
        timeout = self.config.idle_timeout
        if self._tls is not None:
            try:
                await writer.start_tls(self._tls, ssl_handshake_timeout=min(timeout, 30.0))
            except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
                self.metrics.refused.labels(self.name, "tls_handshake").inc()
                log.info("syslog %s: TLS handshake with %s failed: %s", self.name, host, exc)
                return
            host = certificate_name(writer.get_extra_info("ssl_object")) or host
        splitter = StreamReader(self.config.max_message_bytes)
        while True:
            if not self._room.is_set():
                await self._room.wait()       # backpressure: stop reading; the sender's window fills
            try:
                async with asyncio.timeout(timeout):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                self.metrics.refused.labels(self.name, "idle_timeout").inc()
                break
            if not data:
                break
            self._take(host, splitter.feed_records(data, self._position, now_us(), dt.datetime.now(dt.UTC)))
            if splitter.broken:
                self.metrics.refused.labels(self.name, splitter.broken.reason).inc()
                log.info("syslog %s: closing the connection of %s: %s", self.name, host, splitter.broken)
                return
        held = splitter.pending()
        last = splitter.end_records(self._position, now_us(), dt.datetime.now(dt.UTC))
        if last.records or last.problems:
            self._take(host, last)
        elif held:
            self.metrics.malformed.labels(self.name, "cut_frame").inc()

    # -- handing over ------------------------------------------------------------------------

    async def _flush(self, emit: Emit) -> None:
        pending, self._pending = self._pending, {}
        self._has_data.clear()
        for host, received in pending.items():
            for records, size in _slices(received):
                await self._emit(emit, host, records, size)

    async def _emit(self, emit: Emit, host: str, records: list[Record], size: int) -> None:
        self.on_read(self.label, len(records))
        try:
            await emit(SourceBatch(source=self.label, source_key=self.source_key, log_type=self.config.log_type,
                                   records=records, checkpoint=None,
                                   read_bytes=size + 64 * len(records),
                                   min_level=int(self.config.min_level), filters=self.filters or None,
                                   namespace=self.config.namespace, relayed_host=host))
        finally:
            self._queued -= len(records)
            self._queued_bytes -= size
            if not self._full():
                self._room.set()

    async def _listen(self) -> asyncio.AbstractServer | asyncio.DatagramTransport:
        address, _, port = self.config.listen.rpartition(":")
        host = address.strip("[]") or None
        loop = asyncio.get_running_loop()
        try:
            if self.config.protocol == "udp":
                family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
                sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), int(port)))
                transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), sock=sock)
                self.bound = transport.get_extra_info("sockname")[:2]
                return transport
            server = await asyncio.start_server(self._serve, host, int(port), limit=READ_SIZE,
                                                reuse_address=True, backlog=256)
            self.bound = server.sockets[0].getsockname()[:2]
            return server
        except OSError as exc:
            raise ConfigError(f"agent.toml: syslog listener {self.name}: cannot listen on {self.config.listen}: "
                              f"{exc.strerror}") from None

    async def run(self, emit: Emit) -> None:
        while True:
            try:
                listener = await self._listen()
                break
            except ConfigError as exc:    # the address is taken or not ours: say so, try again
                log.error("%s; trying again in %.0f s", exc, BIND_RETRY)
                await asyncio.sleep(BIND_RETRY)
        log.info("syslog listener %s on %s (%s)", self.name, self.config.listen, self.config.protocol)
        try:
            while True:
                await self._has_data.wait()
                await self._flush(emit)
        except asyncio.CancelledError:
            # A clean stop: what was received goes to the batcher before the task ends.
            self._close(listener)
            await self._flush(emit)
            raise
        finally:
            self._close(listener)

    def _close(self, listener: asyncio.AbstractServer | asyncio.DatagramTransport) -> None:
        listener.close()
        for writer in list(self._connections):
            writer.transport.abort()

    def commit(self, checkpoint: Any) -> None:
        """Nothing to persist: a received message is the spool's once it is there."""

    def lag_bytes(self) -> dict[str, int]:
        return {}
