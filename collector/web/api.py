"""The JSON API under /api/v1/ (contract §8): thin handlers over collector/web/queries.py, the same
functions the pages render, with the CLI's filter names and error messages."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from fleetlog.collector.identity import NamespaceRefused
from fleetlog.collector.web import downloads, queries
from fleetlog.collector.web.auth import Denied
from fleetlog.collector.web.context import auth_of, collector_of, require_caller
from fleetlog.collector.web.openapi import openapi_document
from fleetlog.common.errors import UsageError

log = logging.getLogger("fleetlog.collector.web")
KEEPALIVE_SECONDS = 15.0


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


async def events(request: web.Request) -> web.Response:
    caller = require_caller(request)
    page = await queries.search_events(collector_of(request), caller, request.query)
    if page["next"]:
        page["next_url"] = f"/api/v1/events?{queries.page_links(request.query, _next=page['next'])}"
    return _json(page)


async def trace(request: web.Request) -> web.Response:
    caller = require_caller(request)
    if request.query:
        raise UsageError(f"unknown query parameter {next(iter(request.query))!r} (trace takes none)")
    return _json(await queries.trace(collector_of(request), caller, request.match_info["request_id"]))


async def status(request: web.Request) -> web.Response:
    caller = require_caller(request)
    return _json(await queries.status(collector_of(request), caller))


async def histogram(request: web.Request) -> web.Response:
    caller = require_caller(request)
    return _json(await queries.histogram(collector_of(request), caller, request.query))


async def notes(request: web.Request) -> web.Response:
    """Add a note (`Admin.EventLog.Note`): JSON {"text": ..., "namespace": ...} or form fields
    `text` and `namespace` (optional: the caller's own namespace, see identity.note_namespace)."""
    caller = require_caller(request)
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise UsageError("body: not valid JSON") from None
        text = body.get("text") if isinstance(body, dict) else None
        namespace = body.get("namespace", "") if isinstance(body, dict) else ""
        csrf = None
    else:
        form = await request.post()
        text, csrf, namespace = form.get("text"), form.get("csrf"), form.get("namespace", "")
    auth_of(request).check_csrf(request, csrf if isinstance(csrf, str) else None)
    if not caller.can_note:
        raise Denied(f"role {caller.role!r} may not add notes", caller)
    if not isinstance(text, str) or not text.strip():
        raise UsageError("note text is empty")
    if not isinstance(namespace, str):
        raise UsageError("namespace: expected a string")
    try:
        seq, event_id = await collector_of(request).add_note(caller, text, namespace)
    except NamespaceRefused as exc:
        raise Denied(str(exc), caller) from None
    return _json({"seq": seq, "id": event_id}, status=201)


async def export(request: web.Request) -> web.StreamResponse:
    caller = require_caller(request)
    return await downloads.export(request, collector_of(request), caller, request.query)


async def bundle(request: web.Request) -> web.StreamResponse:
    caller = require_caller(request)
    return await downloads.bundle(request, collector_of(request), caller, request.query)


async def follow(request: web.Request) -> web.StreamResponse:
    """Live tail as server-sent events over the collector's follow path. Each event's SSE id is the
    follow cursor just past it (JSON, chain -> seq: a cluster has one chain per collector), so a
    reconnecting EventSource (Last-Event-ID) or a resumed page (`cursor`, or `after_seq` on a
    one-chain store) continues exactly after the last event it showed, whichever collector
    stored the next one."""
    caller = require_caller(request)
    collector = collector_of(request)
    raw = queries.raw_filters(request.query, ("after_seq", "cursor"))
    spec = collector.filter_spec(raw, caller)
    # Last-Event-ID first: an EventSource reconnects with its original URL and the newest id.
    resume = (request.headers.get("Last-Event-ID") or request.query.get("cursor") or request.query.get("after_seq")
              or "")
    after_seq, cursor_json = 0, ""
    if resume.startswith("{"):
        cursor_json = resume
    elif resume:
        if not (resume.isascii() and resume.isdigit()):
            raise UsageError(f"after_seq: expected a sequence number, got {resume!r}")
        after_seq = int(resume)
    cursor = await collector.follow_start(after_seq, cursor_json)
    await collector.record_search(caller, "follow", raw, via="web")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(f"event: start\ndata: {json.dumps({'cursor': cursor})}\n\n".encode())
    pages: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue(maxsize=8)

    async def produce() -> None:
        async for page, _ in collector.follow(spec, dict(cursor)):
            await pages.put(page)
    producer = asyncio.ensure_future(produce())
    position = dict(cursor)
    try:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):   # not wait_for: it can drop a cancellation
                    page = await pages.get()
            except TimeoutError:
                if producer.done():
                    break
                await response.write(b": keepalive\n\n")   # also notices a closed connection
                continue
            parts = []
            for event in page:
                position[collector.chain_of(event)] = event["seq"]
                parts.append(f"id: {json.dumps(position, separators=(',', ':'))}\n"
                             f"data: {json.dumps(event, ensure_ascii=False)}\n\n")
            await response.write("".join(parts).encode())
    except ConnectionResetError:
        pass   # the browser went away (page closed, paused)
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
    return response


async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


def add_routes(application: web.Application) -> None:
    application.router.add_get("/api/v1/events", events)
    application.router.add_get("/api/v1/trace/{request_id:.+}", trace)
    application.router.add_get("/api/v1/status", status)
    application.router.add_get("/api/v1/histogram", histogram)
    application.router.add_post("/api/v1/notes", notes)
    application.router.add_get("/api/v1/export", export)
    application.router.add_get("/api/v1/bundle", bundle)
    application.router.add_get("/api/v1/follow", follow)
    application.router.add_get("/api/v1/openapi.json", openapi)
