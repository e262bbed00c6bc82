"""gRPC handlers: thin translation between the wire and the collector's domain code.

Each handler authenticates, decodes, calls into CollectorApp, and encodes. Domain errors become
gRPC status codes: UsageError -> INVALID_ARGUMENT, AuthError -> PERMISSION_DENIED or
UNAUTHENTICATED, StorageError -> UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from collector.identity import Caller
from collector.ingest import BadBatch, Origin, prepare_batch
from common.errors import AuthError, StorageError, UsageError
from common.event import to_json
from common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from common.pb.fleetlog.v1 import fleetlog_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from collector.app import CollectorApp

log = logging.getLogger("fleetlog.collector.service")

_FILTER_KEYS = tuple(f.name for f in pb.Filters.DESCRIPTOR.fields)


def filters_to_dict(filters: pb.Filters) -> dict[str, str]:
    return {key: getattr(filters, key) for key in _FILTER_KEYS if getattr(filters, key)}


async def _authenticate(app: CollectorApp, context: grpc.aio.ServicerContext, what: str,
                        claimed: str = "") -> Caller:
    try:
        return app.authenticator.authenticate(context, claimed)
    except AuthError as exc:
        await app.record_denial(None, what, str(exc), context)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        raise  # abort raises; this keeps type checkers content


async def _require(app: CollectorApp, context: grpc.aio.ServicerContext, caller: Caller, allowed: bool,
                   what: str) -> None:
    if not allowed:
        await app.record_denial(caller, what, f"role {caller.role} may not {what}", context)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"role {caller.role!r} may not {what}")


class IngestService(pb_grpc.IngestServicer):
    def __init__(self, app: CollectorApp):
        self.app = app

    async def Stream(self, request_iterator: AsyncIterator[pb.IngestRequest],
                     context: grpc.aio.ServicerContext) -> AsyncIterator[pb.IngestReply]:
        app = self.app
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        claimed = first.hello.node_name if first.HasField("hello") else ""
        caller = await _authenticate(app, context, "ingest", claimed)
        await _require(app, context, caller, caller.can_ingest, "ingest")
        origin = Origin(host=caller.name, host_ip=caller.ip, namespaces=caller.namespaces,
                        claimed=claimed if claimed != caller.name else "")
        pending: asyncio.Queue = asyncio.Queue(maxsize=64)
        app.agent_connected(caller.name, caller.ip, +1)

        async def read_batches() -> None:
            try:
                if first.HasField("batch"):
                    await pending.put(await self._submit(first.batch, origin))
                async for request in request_iterator:
                    if request.HasField("batch"):
                        await pending.put(await self._submit(request.batch, origin))
            finally:
                await pending.put(None)

        reader = asyncio.create_task(read_batches())
        try:
            while (item := await pending.get()) is not None:
                _batch_id, job = item
                yield await job
            await reader
        finally:
            reader.cancel()
            app.agent_connected(caller.name, caller.ip, -1)

    async def _submit(self, batch: pb.Batch, origin: Origin) -> tuple[int, asyncio.Future]:
        """Prepare a batch and hand it to the writer; the returned future resolves to its ack."""
        app = self.app
        started = time.perf_counter()
        app.note_batch(origin.host, batch.sent_at_us)
        try:
            prepared = prepare_batch(batch, origin, app.classifier)
        except BadBatch as exc:
            app.metrics.dropped.labels("bad_batch").inc()
            log.error("from %s: %s", origin.host, exc)
            done = asyncio.get_running_loop().create_future()
            done.set_result(pb.IngestReply(batch_id=batch.batch_id, error=str(exc)))
            return batch.batch_id, done
        app.count_received(origin.host, prepared)
        admitted = sum(len(events) for events in prepared.events)
        await app.admission.acquire(admitted)   # this stream reads nothing more until it fits

        async def commit() -> pb.IngestReply:
            try:
                results = await app.writer.submit(prepared.events) if prepared.events else []
            except StorageError as exc:
                return pb.IngestReply(batch_id=batch.batch_id, error=str(exc))
            finally:
                await app.admission.release(admitted)
            stored = sum(r.stored for r in results)
            duplicates = sum(r.duplicates for r in results)
            app.metrics.ingest_batch_seconds.observe(time.perf_counter() - started)
            app.count_stored(origin.host, stored, duplicates)
            return pb.IngestReply(batch_id=batch.batch_id, stored=stored, duplicates=duplicates,
                                  dropped=prepared.dropped_below_level + prepared.denied)

        return batch.batch_id, asyncio.ensure_future(commit())


class QueryService(pb_grpc.QueryServicer):
    def __init__(self, app: CollectorApp):
        self.app = app

    async def _reader(self, context: grpc.aio.ServicerContext, what: str) -> Caller:
        caller = await _authenticate(self.app, context, what)
        await _require(self.app, context, caller, caller.can_read, what)
        return caller

    async def Search(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext):
        caller = await self._reader(context, "search")
        raw = filters_to_dict(request.filters)
        try:
            spec = self.app.filter_spec(raw, caller)
        except UsageError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await self.app.record_search(caller, request.purpose or "search", raw)
        order = "desc" if request.order == "desc" else "asc"
        pages = self.app.query.search(spec, order=order, limit=request.limit)
        try:
            while (page := await asyncio.to_thread(next, pages, None)) is not None:
                yield pb.EventPage(events_json=[to_json(e) for e in page], last_seq=page[-1]["seq"])
        except StorageError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    async def Follow(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext):
        caller = await self._reader(context, "follow")
        raw = filters_to_dict(request.filters)
        try:
            spec = self.app.filter_spec(raw, caller)
        except UsageError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await self.app.record_search(caller, "follow", raw)
        try:
            cursor = await self.app.follow_start(request.after_seq, request.cursor_json)
        except UsageError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        # An empty first page tells the client where it starts, so after a reconnect it resumes
        # from there even if nothing matched before the collector went away. last_seq is the
        # cursor of a one-chain store (today's wire format); cursor_json the cursor of any store.
        yield pb.EventPage(last_seq=max(cursor.values(), default=0), cursor_json=json.dumps(cursor))
        async for page, past in self.app.follow(spec, cursor):
            yield pb.EventPage(events_json=[to_json(e) for e in page], last_seq=max(past.values(), default=0),
                               cursor_json=json.dumps(past))

    async def Status(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext):
        await self._reader(context, "status")
        return await self.app.status()

    async def Evidence(self, request: pb.EvidenceRequest, context: grpc.aio.ServicerContext):
        await self._reader(context, "evidence")
        if request.bundle_digests_sha256 and not re.fullmatch(r"[0-9a-f]{64}", request.bundle_digests_sha256):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bundle_digests_sha256: expected 64 hex digits")
        return await self.app.evidence(request)


class AdminService(pb_grpc.AdminServicer):
    def __init__(self, app: CollectorApp):
        self.app = app

    async def Note(self, request: pb.NoteRequest, context: grpc.aio.ServicerContext):
        caller = await _authenticate(self.app, context, "note")
        await _require(self.app, context, caller, caller.can_note, "add notes")
        if not request.text.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "note text is empty")
        seq, event_id = await self.app.add_note(caller, request.text)
        return pb.NoteReply(seq=seq, id=event_id)
