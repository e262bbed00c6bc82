"""The collector's gRPC server: its services (ingest, query, admin, health) behind the auth gate,
the bounds on what one peer may hold, and the listening port (TLS when `[tls]` is set)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.gate import AuthGate
from fleetlog.collector.running import RunningCollector
from fleetlog.collector.service import AdminService, IngestService, QueryService
from fleetlog.common.errors import ConfigError
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2_grpc as pb_grpc
from fleetlog.common.tls import TlsFiles, server_credentials

# How long a connection may take to become an HTTP/2 connection (TLS and the client preface): a
# peer that connects and sends nothing holds a descriptor for no longer than this.
HANDSHAKE_TIMEOUT_MS = 10_000
SERVICES = ("fleetlog.v1.Ingest", "fleetlog.v1.Query", "fleetlog.v1.Admin")


def grpc_server_options(config: CollectorConfig) -> list[tuple[str, int]]:
    """Bounds on what one peer may hold: message size (gRPC refuses larger ones with
    RESOURCE_EXHAUSTED before reading them into memory), streams per connection, and keepalive
    enforcement (agents ping every 10 s; a peer pinging more often than every 5 s without data
    is sent GOAWAY after two strikes)."""
    return [
        ("grpc.max_receive_message_length", config.ingest.max_message_bytes),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.max_concurrent_streams", config.ingest.max_streams_per_connection),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.ping_timeout_ms", 20_000),   # else grpc waits 60 s for a ping's answer
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
        # Without BDP probing a stream's receive window stays small unless its handler is
        # reading: a stream waiting for admission holds one message, not megabytes more in
        # grpc's buffers (measured: 16 flooding streams, peak RSS 511 -> 329 MiB).
        ("grpc.http2.bdp_probe", 0),
    ]


class GrpcServer:
    """Bound in `bind`, serving from `start` (readiness waits for that), drained in `stop`."""

    def __init__(self) -> None:
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self.started = False

    def bind(self, config: CollectorConfig, collector: RunningCollector) -> int:
        """Build the server with every service and bind it to `listen`; the port it got."""
        server = grpc.aio.server(options=grpc_server_options(config), interceptors=[AuthGate(collector)])
        server.add_generic_rpc_handlers((IngestService(collector).handler(),))
        pb_grpc.add_QueryServicer_to_server(QueryService(collector), server)
        pb_grpc.add_AdminServicer_to_server(AdminService(collector), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if config.tls is not None:
            tls = config.tls
            creds = server_credentials(TlsFiles(tls.ca, tls.cert, tls.key), tls.require_client_cert)
            port = server.add_secure_port(config.listen, creds)
        else:
            port = server.add_insecure_port(config.listen)
        if port == 0:
            raise ConfigError(f"collector.toml: listen: cannot listen on {config.listen}")
        self._server = server
        return port

    async def start(self) -> None:
        assert self._server is not None, "bind first"
        await self._server.start()
        self.started = True

    async def serving(self) -> None:
        """Health checks (the whole server and each service) answer SERVING from now on."""
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        for service in SERVICES:
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """Health checks say NOT_SERVING; calls in flight get `grace` seconds, then are cancelled."""
        await self.health.enter_graceful_shutdown()
        assert self._server is not None
        await self._server.stop(grace)
