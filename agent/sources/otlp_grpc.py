"""OTLP/gRPC: LogsService/Export on a grpc.aio server in the agent's event loop.

The request reaches the source as bytes (no deserializer in the handler), so that a body that is
not an ExportLogsServiceRequest is counted by the source and answered INVALID_ARGUMENT, instead
of being refused inside gRPC unseen. A full spool is UNAVAILABLE with the delay to wait, both in
the standard `grpc-status-details-bin` (a google.rpc.Status holding a google.rpc.RetryInfo, as the
OTLP specification says) and in `google.rpc.retryinfo-bin`, the key the Python SDK reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from fleetlog.agent.sources.otlp import Answer
from fleetlog.agent.sources.syslog import peer_host
from fleetlog.common.errors import ConfigError

if TYPE_CHECKING:
    from fleetlog.agent.sources.otlp import OtlpSource

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def retry_metadata(code: grpc.StatusCode, message: str, delay: float) -> tuple[tuple[str, bytes], ...]:
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromNanoseconds(int(delay * 1e9))
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),
            ("google.rpc.retryinfo-bin", info.SerializeToString()))


def grpc_peer(context: Any, tls: bool) -> str:
    """The client certificate's CN with TLS (when one was presented), else the peer's address
    ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000")."""
    if tls:
        auth = context.auth_context() or {}
        for key in ("x509_common_name", "x509_subject_alternative_name"):
            name = next((v.decode(errors="replace") for v in auth.get(key, ()) if v), "")
            if name:
                return name
    kind, _, rest = (context.peer() or "").partition(":")
    address = rest.rsplit(":", 1)[0].replace("%5B", "[").replace("%5D", "]").strip("[]") if kind in (
        "ipv4", "ipv6") else rest
    return peer_host(address)


async def start_grpc(source: OtlpSource, address: str, listener: str,
                     credentials: grpc.ServerCredentials | None) -> tuple[grpc.aio.Server, int]:
    config = source.config

    async def export(data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        with source.request_slot(listener) as admitted:
            if admitted:
                answer = await source.take(data, "protobuf", grpc_peer(context, credentials is not None), listener)
            else:
                answer = Answer("full", message="the relay is busy with other requests; retry later")
        if answer.status == "bad":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, answer.message)
        if answer.status == "full":
            code = grpc.StatusCode.UNAVAILABLE
            await context.abort(code, answer.message, retry_metadata(code, answer.message, config.retry_after))
        response = ExportLogsServiceResponse()
        if answer.rejected:
            response.partial_success.rejected_log_records = answer.rejected
            response.partial_success.error_message = answer.message
        return response.SerializeToString()

    handler = grpc.method_handlers_generic_handler(SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)})
    idle_ms = int(config.idle_timeout * 1000)
    server = grpc.aio.server(handlers=[handler], maximum_concurrent_rpcs=config.max_connections, options=[
        ("grpc.max_receive_message_length", config.max_request_bytes),
        ("grpc.max_connection_idle_ms", idle_ms),
        ("grpc.so_reuseport", 0),
    ])
    host, _, port_text = address.rpartition(":")
    # ":4317" is every address, as for the syslog listeners; gRPC wants it spelled out.
    candidates = [address] if host else [f"[::]:{port_text}", f"0.0.0.0:{port_text}"]
    port = 0
    for candidate in candidates:
        try:
            port = server.add_secure_port(candidate, credentials) if credentials else server.add_insecure_port(candidate)
        except RuntimeError:
            port = 0
        if port:
            break
    if not port:
        raise ConfigError(f"agent.toml: otlp listener {listener}: cannot listen on {address}")
    await server.start()
    return server, port
