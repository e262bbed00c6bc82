"""gRPC handlers: thin translation between the wire and the collector's domain code.

Each handler authenticates, decodes, calls the running collector (collector/running.py), and
encodes. Domain errors become
gRPC status codes: UsageError -> INVALID_ARGUMENT, AuthError -> PERMISSION_DENIED or
UNAUTHENTICATED, QueryTimeout -> RESOURCE_EXHAUSTED, StorageError -> UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, TypeVar

import grpc

from fleetlog.collector.auth_failures import TOO_MANY_FAILURES
from fleetlog.collector.filters import FilterSpec
from fleetlog.collector.identity import Caller, NamespaceRefused, peer_ip
from fleetlog.collector.ingest import BadBatch, Origin, RelayRefused, decode_request
from fleetlog.collector.settings.calls import settings_call
from fleetlog.collector.settings.errors import SettingsClash, SettingsNotFound, SettingsRefused
from fleetlog.common.errors import AuthError, QueryTimeout, StorageError, UsageError
from fleetlog.common.event import to_json
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from fleetlog.collector.running import RunningCollector

log = logging.getLogger("fleetlog.collector.service")

T = TypeVar("T")
_FILTER_KEYS = tuple(f.name for f in pb.Filters.DESCRIPTOR.fields)


def filters_to_dict(filters: pb.Filters) -> dict[str, str]:
    return {key: getattr(filters, key) for key in _FILTER_KEYS if getattr(filters, key)}


async def refuse_too_many_failures(collector: RunningCollector, context: grpc.aio.ServicerContext,
                                   what: str) -> None:
    """RESOURCE_EXHAUSTED, unchecked, while the peer's address has too many failed
    authentications (collector/auth_failures.py); nothing when it has not."""
    wait = collector.authentication_retry_after(peer_ip(context))
    if wait:
        await collector.record_denial(None, what, TOO_MANY_FAILURES, context)
        # One text whatever the wait: an agent logs a refusal once per distinct reason.
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{TOO_MANY_FAILURES}; try again within a minute")


async def _authenticate(collector: RunningCollector, context: grpc.aio.ServicerContext, what: str,
                        claimed: str = "") -> Caller:
    await refuse_too_many_failures(collector, context, what)
    try:
        return collector.authenticate(context, claimed)
    except AuthError as exc:
        collector.failed_authentication(peer_ip(context))
        await collector.record_denial(None, what, str(exc), context)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        raise  # abort raises; this keeps type checkers content


async def _require(collector: RunningCollector, context: grpc.aio.ServicerContext, caller: Caller,
                   allowed: bool, what: str) -> None:
    if not allowed:
        await collector.record_denial(caller, what, f"role {caller.role} may not {what}", context)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"role {caller.role!r} may not {what}")


async def _audit(collector: RunningCollector, context: grpc.aio.ServicerContext, caller: Caller,
                 purpose: str, raw: dict[str, str]) -> None:
    """Record a search before answering it; when it cannot be recorded (storage not writable),
    the search is refused: contract §1 wants every search audited."""
    try:
        await collector.record_search(caller, purpose, raw)
    except StorageError as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot record this search in the audit log: {exc}")


async def _until_cancelled(pages: Iterator[T], what: str, caller: Caller) -> AsyncIterator[T]:
    """Each page read on a worker thread. When the client cancels (grpc then cancels the handler),
    reading stops after the page in progress: an abandoned export costs no more than that, and
    an abandoned bundle is never attested."""
    count = 0
    try:
        while (page := await asyncio.to_thread(next, pages, None)) is not None:
            count += 1
            yield page
    except (asyncio.CancelledError, GeneratorExit):
        # CancelledError when the cancel finds the page being read; GeneratorExit when it finds
        # the page being sent (grpc then closes this generator at its yield).
        log.info("%s for %s: cancelled by the client after %d pages", what, caller.name, count)
        raise


class IngestService:
    """Ingest/Stream, registered with a raw-bytes deserializer: grpc hands over the message bytes
    and this service decodes them (collector/ingest.py), so a corrupt frame is refused with
    INVALID_ARGUMENT and a reason instead of grpc's "Unexpected DecodeError" and a traceback, and
    with tokens or mTLS configured nothing is decoded before the peer is authenticated."""

    def __init__(self, collector: RunningCollector):
        self.collector = collector

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler("fleetlog.v1.Ingest", {
            "Stream": grpc.stream_stream_rpc_method_handler(
                self.Stream, request_deserializer=None,
                response_serializer=pb.IngestReply.SerializeToString)})

    async def Stream(self, request_iterator: AsyncIterator[bytes],
                     context: grpc.aio.ServicerContext) -> AsyncIterator[pb.IngestReply]:
        collector = self.collector
        peer = peer_ip(context)
        caller: Caller | None = None
        if collector.needs_credentials:
            # Credentials are in the connection and the metadata: authenticate before reading.
            caller = await _authenticate(collector, context, "ingest")
        first_raw = await anext(aiter(request_iterator), None)
        if first_raw is None:
            return
        try:
            first = decode_request(first_raw)
        except BadBatch as exc:
            await self._refuse(context, peer, exc)
        claimed = first.hello.node_name if first.HasField("hello") else ""
        if caller is None:
            caller = await _authenticate(collector, context, "ingest", claimed)
        await _require(collector, context, caller, caller.can_ingest, "ingest")
        origin = Origin(host=caller.name, host_ip=caller.ip, namespaces=caller.namespaces,
                        claimed=claimed if claimed != caller.name else "", may_relay=caller.may_relay)
        # Futures of acknowledgements in batch order; a BadBatch ends the stream after the acks
        # of every batch before it were sent (those batches stay stored).
        pending: asyncio.Queue = asyncio.Queue(maxsize=64)
        collector.agent_connected(caller.name, caller.ip, +1)

        first_batch = first.batch if first.HasField("batch") else None
        first_size = len(first_raw)
        del first, first_raw   # a message of up to max_message_bytes is not kept for the stream's life

        async def read_batches(batch: pb.Batch | None, size: int) -> None:
            try:
                if batch is not None:
                    await collector.admit(size)
                    await pending.put(await self._submit(batch, size, origin))
                batch = None
                messages = aiter(request_iterator)
                while True:
                    await collector.wait_for_room()
                    raw = await anext(messages, None)
                    if raw is None:
                        break
                    size = len(raw)
                    # The message's bytes are taken before it is decoded and kept until its
                    # commit: a stream waiting here holds one message, nothing decoded.
                    await collector.admit(size)
                    try:
                        request = decode_request(raw)
                    except BadBatch:
                        await collector.release(0, size)
                        raise
                    raw = None
                    if request.HasField("batch"):
                        batch = request.batch
                        del request
                        await pending.put(await self._submit(batch, size, origin))
                        batch = None   # only the prepared events are kept until the commit
                    else:
                        await collector.release(0, size)
            except (BadBatch, RelayRefused) as exc:
                await pending.put(exc)
            finally:
                await pending.put(None)

        reader = asyncio.create_task(read_batches(first_batch, first_size))
        del first_batch
        try:
            while (item := await pending.get()) is not None:
                if isinstance(item, BadBatch):
                    await self._refuse(context, peer, item)
                if isinstance(item, RelayRefused):
                    # The agent keeps the batch spooled and retries slowly, logging the reason once.
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(item))
                yield await item
            await reader
        finally:
            reader.cancel()
            collector.agent_connected(caller.name, caller.ip, -1)

    async def _refuse(self, context: grpc.aio.ServicerContext, peer: str, exc: BadBatch) -> None:
        self.collector.refuse(peer, exc.reason, str(exc))
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def _submit(self, batch: pb.Batch, wire_bytes: int, origin: Origin) -> asyncio.Future:
        """Prepare a batch whose `wire_bytes` the caller admitted, and hand it to the writer; the
        returned future resolves to its ack, and the budget is given back after the commit.
        Raises BadBatch or RelayRefused (nothing of the batch is stored, the budget is back)."""
        batch_id = batch.batch_id
        admitted = await self.collector.prepare(batch, wire_bytes, origin)

        async def commit() -> pb.IngestReply:
            try:
                done = await self.collector.commit(admitted)
            except StorageError as exc:
                return pb.IngestReply(batch_id=batch_id, error=str(exc))
            return pb.IngestReply(batch_id=batch_id, stored=done.stored, duplicates=done.duplicates,
                                  dropped=done.dropped)

        return asyncio.ensure_future(commit())


def _storage_status(exc: StorageError) -> grpc.StatusCode:
    """A query stopped by the deadline is the caller's to narrow (not retried as UNAVAILABLE)."""
    return grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, QueryTimeout) else grpc.StatusCode.UNAVAILABLE


class QueryService(pb_grpc.QueryServicer):
    def __init__(self, collector: RunningCollector):
        self.collector = collector

    async def _reader(self, context: grpc.aio.ServicerContext, what: str) -> Caller:
        caller = await _authenticate(self.collector, context, what)
        await _require(self.collector, context, caller, caller.can_read, what)
        return caller

    async def _scoped(self, context: grpc.aio.ServicerContext, what: str, purpose: str,
                      filters: pb.Filters) -> tuple[Caller, FilterSpec]:
        """The caller, who may read, and the filters narrowed to its namespaces; the search is
        audited before anything is read."""
        caller = await self._reader(context, what)
        raw = filters_to_dict(filters)
        try:
            spec = self.collector.filter_spec(raw, caller)
        except UsageError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await _audit(self.collector, context, caller, purpose, raw)
        return caller, spec

    async def Search(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext):
        purpose = request.purpose or "search"
        caller, spec = await self._scoped(context, "search", purpose, request.filters)
        order = "desc" if request.order == "desc" else "asc"
        pages = self.collector.search(spec, order=order, limit=request.limit)
        try:
            async for page in _until_cancelled(pages, purpose, caller):
                yield pb.EventPage(events_json=[to_json(e) for e in page], last_seq=page[-1]["seq"])
        except StorageError as exc:
            await context.abort(_storage_status(exc), str(exc))

    async def Follow(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext):
        _, spec = await self._scoped(context, "follow", "follow", request.filters)
        try:
            cursor = await self.collector.follow_start(request.after_seq, request.cursor_json)
        except UsageError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        # An empty first page tells the client where it starts, so after a reconnect it resumes
        # from there even if nothing matched before the collector went away. last_seq is the
        # cursor of a one-chain store (today's wire format); cursor_json the cursor of any store.
        yield pb.EventPage(last_seq=max(cursor.values(), default=0), cursor_json=json.dumps(cursor))
        try:
            async for page, past in self.collector.follow(spec, cursor):
                yield pb.EventPage(events_json=[to_json(e) for e in page], last_seq=max(past.values(), default=0),
                                   cursor_json=json.dumps(past))
        except StorageError as exc:
            await context.abort(_storage_status(exc), str(exc))

    async def Status(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext):
        caller = await self._reader(context, "status")
        return await self.collector.status(caller)

    async def Evidence(self, request: pb.EvidenceRequest, context: grpc.aio.ServicerContext):
        caller = await self._reader(context, "evidence")
        try:
            return await self.collector.evidence(caller)
        except StorageError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot record this request in the audit log: {exc}")

    async def Bundle(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext):
        caller, spec = await self._scoped(context, "bundle", "bundle", request.filters)
        bundle = self.collector.bundle(spec, caller)
        try:
            async for page in _until_cancelled(bundle.pages(), "bundle", caller):
                yield pb.BundlePage(lines=[line for _, line, _ in page], masked=[masked for _, _, masked in page])
            yield pb.BundlePage(evidence=await bundle.attest())
        except StorageError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))


class AdminService(pb_grpc.AdminServicer):
    def __init__(self, collector: RunningCollector):
        self.collector = collector

    async def Note(self, request: pb.NoteRequest, context: grpc.aio.ServicerContext):
        caller = await _authenticate(self.collector, context, "note")
        await _require(self.collector, context, caller, caller.can_note, "add notes")
        if not request.text.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "note text is empty")
        try:
            seq, event_id = await self.collector.add_note(caller, request.text, request.namespace)
        except UsageError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except NamespaceRefused as exc:
            await self.collector.record_denial(caller, "note", str(exc), context)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except StorageError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot store the note: {exc}")
        return pb.NoteReply(seq=seq, id=event_id)

    async def Settings(self, request: pb.SettingsRequest, context: grpc.aio.ServicerContext):
        """The CLI's settings verbs: the layer the console's API uses, `fields.via = "cli"`."""
        caller = await _authenticate(self.collector, context, "settings")
        try:
            answer = await settings_call(self.collector.settings, caller, request)
        except SettingsRefused as exc:
            await self.collector.record_denial(caller, f"settings {request.verb} {request.kind}", str(exc), context)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except SettingsNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except SettingsClash as exc:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except UsageError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except StorageError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return pb.SettingsReply(json=json.dumps(answer, ensure_ascii=False))
