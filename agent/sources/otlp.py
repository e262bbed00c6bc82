"""The OTLP receiver: a source that takes logs from OpenTelemetry SDKs and collectors over
OTLP/gRPC (LogsService/Export) and OTLP/HTTP (`POST /v1/logs`, protobuf or JSON).

`[[sources]] type = "otlp"` (contract §10) with `grpc_listen` and/or `http_listen`. Requests are
decoded and mapped by otlp_map and handed to the agent's normal path (batcher -> disk spool ->
shipper), so relayed records get the spool, thresholds, filters and exactly-once storage from the
spool on. The opentelemetry-proto package (the `receivers` extra) is imported only when an otlp
source is built.

Acknowledgement: a request is answered with success only once its records are durable in the
spool: its last batch carries a future as its checkpoint, which the pipeline resolves through
`commit` after the spool's write and fsync. When the spool has no room for a request (or cannot
be written) the request is refused before anything is taken, with the protocol's retryable answer:
gRPC UNAVAILABLE with a RetryInfo, HTTP 503 with Retry-After. Nothing is dropped silently: records
that cannot be stored are answered as partial success (rejected_log_records, error_message).

Origin, identity and bounds are the syslog receiver's (agent/sources/syslog.py): host = the peer's
address or its client certificate's name, `host.name` -> fields.claimed_host, a random source key
per run with positions from 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from fleetlog.agent.metrics import ReceiverMetrics
from fleetlog.agent.sources.base import Emit, SourceBatch
from fleetlog.agent.sources.http_connections import ConnectionLimit
from fleetlog.agent.sources.syslog import (
    BIND_RETRY,
    _slices,
    certificate_name,
    peer_host,
    run_identity,
    server_context,
)
from fleetlog.common.config import Duration, FieldError, LevelName, Size
from fleetlog.common.errors import ConfigError, the_extra
from fleetlog.common.event_filter import EventFilter, FieldPattern
from fleetlog.common.levels import Level
from fleetlog.common.timefmt import now_us
from fleetlog.common.tls import TlsFiles, server_credentials

log = logging.getLogger("fleetlog.agent.otlp")

DEFAULT_GRPC = "127.0.0.1:4317"     # as the OpenTelemetry Collector: loopback unless told otherwise
DEFAULT_HTTP = "127.0.0.1:4318"


@dataclass(frozen=True)
class OtlpSourceConfig:
    type: Literal["otlp"]
    grpc_listen: str = ""                        # HOST:PORT; neither set = both on loopback
    http_listen: str = ""
    name: str = "otlp"                           # listeners NAME-grpc and NAME-http in metrics; source otlp:NAME
    tls: TlsFiles | None = None                  # cert + key; ca set = client certificates required
    namespace: str = ""
    log_type: str = "application"
    max_message_bytes: Size = 64 * 1024          # a longer body is cut and flagged truncated
    max_request_bytes: Size = 4 * 1024 * 1024    # gRPC max_receive_message_length; HTTP body (after gzip)
    max_records_per_request: int = 10_000        # more are rejected (partial success)
    max_connections: int = 1000                  # HTTP connections; gRPC requests at once (gRPC's own bound)
    max_concurrent_requests: int = 64            # requests held at once (read, waiting for the spool); more: retry later
    idle_timeout: Duration = 300.0
    retry_after: Duration = 5.0                  # the delay asked of a sender while the spool is full
    min_level: LevelName = Level.DEBUG
    include: tuple[FieldPattern, ...] = ()
    exclude: tuple[FieldPattern, ...] = ()

    def validate(self) -> None:
        for key in ("grpc_listen", "http_listen"):
            value = getattr(self, key)
            port = value.rpartition(":")[2]
            if value and (not port.isdigit() or not 0 < int(port) < 65536):
                raise FieldError(key, f"expected HOST:PORT, got {value!r}")
        if self.tls is not None and (not self.tls.cert or not self.tls.key):
            raise FieldError("tls", "needs cert and key (and ca to require client certificates)")
        if self.max_message_bytes < 64:
            raise FieldError("max_message_bytes", "must be at least 64 bytes")
        if self.max_request_bytes < 1024:
            raise FieldError("max_request_bytes", "must be at least 1KiB")
        for key in ("max_records_per_request", "max_connections", "max_concurrent_requests"):
            if getattr(self, key) < 1:
                raise FieldError(key, "must be at least 1")
        if self.idle_timeout <= 0:
            raise FieldError("idle_timeout", "must be more than 0")

    @property
    def listens(self) -> dict[str, str]:
        """protocol -> HOST:PORT of the listeners this source runs."""
        if not self.grpc_listen and not self.http_listen:
            return {"grpc": DEFAULT_GRPC, "http": DEFAULT_HTTP}
        return {kind: address for kind, address in (("grpc", self.grpc_listen), ("http", self.http_listen))
                if address}


class Answer:
    """What a request gets: success (perhaps partial), or a refusal (`status`: "full", "bad")."""

    def __init__(self, status: str = "ok", rejected: int = 0, message: str = ""):
        self.status, self.rejected, self.message = status, rejected, message


class OtlpSource:
    def __init__(self, config: OtlpSourceConfig, state_dir: pathlib.Path,
                 on_read: Callable[[str, int], None] | None = None, metrics: ReceiverMetrics | None = None,
                 spool_room: Callable[[int], bool] | None = None):
        try:     # the receivers extra, imported only when an otlp source is configured
            from fleetlog.agent.sources import otlp_grpc, otlp_http, otlp_map
        except ModuleNotFoundError as exc:
            raise ConfigError(f'agent.toml: sources: type = "otlp" needs {the_extra("receivers", exc.name or "")}') \
                from None
        self.map, self.start_grpc, self.start_http = otlp_map, otlp_grpc.start_grpc, otlp_http.start_http
        self.config = config
        self.name = config.name
        self.label, self.source_key = run_identity("otlp", self.name)
        self.on_read = on_read or (lambda source, n: None)
        self.metrics = metrics or ReceiverMetrics()
        self.listeners = {kind: f"{self.name}-{kind}" for kind in config.listens}
        for listener in self.listeners.values():
            self.metrics.listener(listener)
        self.spool_room = spool_room or (lambda size: True)
        self.filters = EventFilter(config.include, config.exclude)
        self._tls = server_context(config.tls) if config.tls and "http" in self.listeners else None
        self._grpc_tls = server_credentials(config.tls, bool(config.tls.ca)) if config.tls and "grpc" in self.listeners \
            else None
        self._position = 0
        self._order = asyncio.Lock()       # positions are handed to the batcher in order
        self._emit: Emit | None = None
        self._requests = 0                 # requests held: read, or waiting for the spool
        self.bound: dict[str, tuple[str, int]] = {}   # protocol -> the address listened on

    # -- one request ---------------------------------------------------------------------------

    def decode(self, data: bytes, encoding: str) -> Any:
        return self.map.decode_json(data) if encoding == "json" else self.map.decode_protobuf(data)

    @contextlib.contextmanager
    def request_slot(self, listener: str) -> Iterator[bool]:
        """Whether one more request may be held: memory stays bounded by max_concurrent_requests
        times max_request_bytes, however many connections there are. Refused: retry later."""
        if self._requests >= self.config.max_concurrent_requests:
            self.metrics.refused.labels(listener, "busy").inc()
            yield False
            return
        self._requests += 1
        try:
            yield True
        finally:
            self._requests -= 1

    async def take(self, data: bytes, encoding: str, host: str, listener: str) -> Answer:
        """Decode, map and spool one request; the answer once its records are durable."""
        metrics = self.metrics
        try:
            request = self.decode(data, encoding)
        except self.map.OtlpDecodeError as exc:
            metrics.refused.labels(listener, exc.reason).inc()
            log.info("otlp %s: a request from %s refused: %s", listener, host, exc)
            return Answer("bad", message=str(exc))
        mapped = self.map.map_request(request, self.config.max_message_bytes, self.config.max_records_per_request,
                                      now_us())
        rejected = sum(mapped.rejected.values())
        for reason, count in mapped.rejected.items():
            metrics.rejected.labels(listener, reason).inc(count)
        if mapped.truncated:
            metrics.malformed.labels(listener, "too_long").inc(mapped.truncated)
        if mapped.bad_ids:
            metrics.malformed.labels(listener, "bad_trace_id").inc(mapped.bad_ids)
        answer = Answer(rejected=rejected, message=mapped.error_message())
        records = mapped.records
        if not records:
            return answer
        size = mapped.size + 64 * len(records)
        if not self.spool_room(size) or self._emit is None:
            metrics.refused.labels(listener, "spool_full").inc()
            return Answer("full", message="the relay's spool is full; retry later")
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Shielded: a sender that gives up (a gRPC deadline) must not cancel a hand-over half done,
        # which could cut the batcher's seal of other requests' records short.
        await asyncio.shield(self._hand_over(records, host, listener, durable))
        await durable
        return answer

    async def _hand_over(self, records: list[Any], host: str, listener: str, durable: asyncio.Future[None]) -> None:
        """Number the records after every earlier request's and give them to the batcher; the last
        slice carries `durable`, resolved by commit once it is in the spool."""
        async with self._order:
            base = self._position
            self._position += len(records)
            records = [r._replace(position=base + r.position) for r in records]
            self.metrics.received.labels(listener).inc(len(records))
            slices = _slices(records)
            for i, (part, part_size) in enumerate(slices):
                self.on_read(self.label, len(part))
                assert self._emit is not None
                await self._emit(SourceBatch(
                    source=self.label, source_key=self.source_key, log_type=self.config.log_type, records=part,
                    checkpoint=durable if i == len(slices) - 1 else None, read_bytes=part_size + 64 * len(part),
                    min_level=int(self.config.min_level), filters=self.filters or None,
                    namespace=self.config.namespace, relayed_host=host))

    def commit(self, checkpoint: Any) -> None:
        """The batch holding a request's last records is in the spool: its answer may go."""
        if isinstance(checkpoint, asyncio.Future) and not checkpoint.done():
            checkpoint.set_result(None)

    def lag_bytes(self) -> dict[str, int]:
        return {}

    # -- listening -------------------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        self._emit = emit
        stops: list[Callable[[], Any]] = []
        try:
            for kind, address in self.config.listens.items():
                while True:
                    try:
                        stop = await (self._serve_grpc(address) if kind == "grpc" else self._serve_http(address))
                        break
                    except ConfigError as exc:    # the address is taken or not ours: say so, try again
                        log.error("%s; trying again in %.0f s", exc, BIND_RETRY)
                        await asyncio.sleep(BIND_RETRY)
                stops.append(stop)
                log.info("otlp listener %s on %s", self.listeners[kind], address)
            await asyncio.Event().wait()
        finally:
            # Requests in flight are not waited for: their records are with the batcher, which the
            # stop seals into the spool; a sender that hears no answer sends them again.
            for stop in stops:
                with contextlib.suppress(Exception):
                    await asyncio.shield(stop())

    async def _serve_grpc(self, address: str) -> Callable[[], Any]:
        server, port = await self.start_grpc(self, address, self.listeners["grpc"], self._grpc_tls)
        self.bound["grpc"] = (address.rpartition(":")[0], port)
        return lambda: server.stop(0)

    async def _serve_http(self, address: str) -> Callable[[], Any]:
        host, _, port = address.rpartition(":")
        runner, _ = await self.start_http(self, self.listeners["http"])
        server = runner.server
        assert server is not None          # made by runner.setup()
        listener_name = self.listeners["http"]
        connections = ConnectionLimit(
            self.config.max_connections, self.metrics.connections.labels(listener_name).inc,
            self.metrics.refused.labels(listener_name, "too_many_connections").inc)
        try:
            listener = await asyncio.get_running_loop().create_server(
                lambda: connections.protocol(server), host.strip("[]") or None, int(port), ssl=self._tls,
                reuse_address=True, backlog=256, family=socket.AF_UNSPEC)
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"agent.toml: otlp listener {self.listeners['http']}: cannot listen on {address}: "
                              f"{exc.strerror}") from None
        self.bound["http"] = listener.sockets[0].getsockname()[:2]

        async def stop() -> None:
            listener.close()
            await runner.cleanup()
        return stop

    def http_host(self, transport: Any) -> str:
        host = peer_host(transport.get_extra_info("peername")) if transport else ""
        if self._tls is not None and transport is not None:
            host = certificate_name(transport.get_extra_info("ssl_object")) or host
        return host
