"""The gate in front of every RPC: with tokens or mTLS configured, a call without valid
credentials is refused before grpc decodes anything it sent.

grpc deserializes a request before the handler runs, so a check inside the handler comes after
the decoder has already read whatever an unauthenticated peer chose to send. This interceptor
looks only at the call's metadata (the bearer token; the TLS handshake has verified a client
certificate already) and, when the call cannot succeed, swaps in a handler with raw-bytes
deserializers that records the denial and answers UNAUTHENTICATED. The health service stays
open, as load balancers and probes expect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from fleetlog.collector.identity import peer_ip
from fleetlog.collector.service import refuse_too_many_failures

if TYPE_CHECKING:
    from fleetlog.collector.running import RunningCollector

OPEN_SERVICES = ("/grpc.health.v1.Health/",)
# The operation named in denials (the same words the handlers use).
OPERATIONS = {"Stream": "ingest", "Search": "search", "Follow": "follow", "Status": "status",
              "Evidence": "evidence", "Note": "note", "Settings": "settings"}


class AuthGate(grpc.aio.ServerInterceptor):
    def __init__(self, collector: RunningCollector):
        self.collector = collector

    async def intercept_service(
            self,
            continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
            details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_SERVICES):
            return handler
        why = self.collector.refusal(details.invocation_metadata)
        if why is None:
            return handler
        return self._refusing(handler, OPERATIONS.get(details.method.rpartition("/")[2], details.method), why)

    def _refusing(self, handler: grpc.RpcMethodHandler, what: str, why: str) -> grpc.RpcMethodHandler:
        collector = self.collector

        async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
            collector.count_refusal("unauthenticated")
            await refuse_too_many_failures(collector, context, what)
            collector.failed_authentication(peer_ip(context))
            await collector.record_denial(None, what, why, context)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, why)

        make = {(False, False): grpc.unary_unary_rpc_method_handler,
                (False, True): grpc.unary_stream_rpc_method_handler,
                (True, False): grpc.stream_unary_rpc_method_handler,
                (True, True): grpc.stream_stream_rpc_method_handler}[
            (handler.request_streaming, handler.response_streaming)]
        return make(refuse, request_deserializer=None, response_serializer=handler.response_serializer)
