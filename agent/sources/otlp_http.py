"""OTLP/HTTP: `POST /v1/logs` with `application/x-protobuf` or `application/json`, gzip or not.

The answer is in the request's encoding: ExportLogsServiceResponse on success (partial success
inside it), a google.rpc.Status with 400 for a body that is not a request, 503 with Retry-After
while the spool is full, 413 past max_request_bytes (as sent, and again unpacked: a small gzip
body cannot unpack into a large one).
"""

from __future__ import annotations

import asyncio
import zlib
from typing import TYPE_CHECKING, Any

from aiohttp import web
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

if TYPE_CHECKING:
    from fleetlog.agent.sources.otlp import OtlpSource

CONTENT_TYPES = {"application/x-protobuf": "protobuf", "application/json": "json"}
SHUTDOWN_GRACE = 0.5
MEDIA = {"protobuf": "application/x-protobuf", "json": "application/json"}


class BodyError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def unpacked(data: bytes, content_encoding: str, limit: int) -> bytes:
    """The body without its gzip (or deflate), at most `limit` bytes unpacked: a bomb stops there."""
    coding = content_encoding.strip().lower()
    if coding in ("", "identity"):
        return data
    if coding not in ("gzip", "deflate"):
        raise BodyError("bad_encoding", f"Content-Encoding {coding[:40]!r}: expected gzip, deflate or none")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if coding == "gzip" else 0))
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BodyError("bad_encoding", f"cannot {coding}-decode the body: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyError("too_large", f"request larger than max_request_bytes ({limit}) unpacked")
    if not inflater.eof:
        raise BodyError("bad_encoding", f"the {coding} body is cut short")
    return out


def _body(message: Any, encoding: str) -> bytes:
    if encoding == "json":
        return json_format.MessageToJson(message, indent=None).encode()
    return bytes(message.SerializeToString())


def _status(code: int, message: str, encoding: str, http: int, headers: dict | None = None) -> web.Response:
    return web.Response(status=http, body=_body(status_pb2.Status(code=code, message=message), encoding),
                        content_type=MEDIA[encoding], headers=headers)


async def start_http(source: OtlpSource, listener: str) -> tuple[web.AppRunner, web.Application]:
    config = source.config

    async def logs(request: web.Request) -> web.Response:
        encoding = CONTENT_TYPES.get(request.content_type)
        if encoding is None:
            source.metrics.refused.labels(listener, "unsupported_media_type").inc()
            return _status(3, f"Content-Type {request.content_type!r}: expected application/x-protobuf or "
                           "application/json", "json", 415)
        with source.request_slot(listener) as admitted:     # before the body is read into memory
            if not admitted:
                return retry_later("the relay is busy with other requests; retry later", encoding)
            return await _take(request, encoding)

    def retry_later(message: str, encoding: str) -> web.Response:
        return _status(14, message, encoding, 503, {"Retry-After": str(max(1, round(config.retry_after)))})

    async def _take(request: web.Request, encoding: str) -> web.Response:
        try:
            async with asyncio.timeout(config.idle_timeout):
                data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            source.metrics.refused.labels(listener, "too_large").inc()
            return _status(3, f"request larger than max_request_bytes ({config.max_request_bytes})", encoding, 413)
        except TimeoutError:
            source.metrics.refused.labels(listener, "idle_timeout").inc()
            return _status(4, "the request body did not arrive in time", encoding, 408)
        try:
            data = unpacked(data, request.headers.get("Content-Encoding", ""), config.max_request_bytes)
        except BodyError as exc:
            source.metrics.refused.labels(listener, exc.reason).inc()
            return _status(3, str(exc), encoding, 413 if exc.reason == "too_large" else 400)
        answer = await source.take(data, encoding, source.http_host(request.transport), listener)
        if answer.status == "bad":
            return _status(3, answer.message, encoding, 400)
        if answer.status == "full":
            return retry_later(answer.message, encoding)
        response = ExportLogsServiceResponse()
        if answer.rejected:
            response.partial_success.rejected_log_records = answer.rejected
            response.partial_success.error_message = answer.message
        return web.Response(body=_body(response, encoding), content_type=MEDIA[encoding])

    app = web.Application(client_max_size=config.max_request_bytes)
    app.router.add_post("/v1/logs", logs)
    # Bodies are unpacked here, not by aiohttp, so that a broken or oversized gzip is ours to answer.
    # At a stop, requests still waiting for the spool are not waited for (the agent's stop seals
    # their records after the sources end); shutdown_timeout only lets answers being written finish.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=config.idle_timeout, handle_signals=False,
                           auto_decompress=False, shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    return runner, app
