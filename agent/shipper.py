"""The gRPC client: streams sealed batches to a collector and turns acknowledgements into
commits.

One bidirectional stream at a time. Up to `window` batches are in flight; the collector
acknowledges each after its storage commit. On any failure the shipper reconnects with
exponential backoff and jitter, walking the `collectors` list in order (failover), and re-sends
every unacknowledged batch: the collector deduplicates, so at-least-once transport gives
exactly-once storage. While on a fallback collector it probes the first one and returns to it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any, cast

import grpc

from fleetlog.agent.batcher import SealedBatch, with_send_time
from fleetlog.agent.outbox import Outbox
from fleetlog.agent.wire import length_delimited
from fleetlog.common import __version__
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.tls import TlsFiles, channel_credentials

log = logging.getLogger("fleetlog.agent.shipper")

_METHOD = "/fleetlog.v1.Ingest/Stream"


def _frame_batch(payload: bytes) -> bytes:
    """An IngestRequest{batch = payload} built around already-serialized bytes (field 2, LEN)."""
    return length_delimited(b"\x12", payload)


# Status codes that mean "not you, not now": retried, but slowly and logged once. A collector
# refuses a batch it cannot accept (INVALID_ARGUMENT: malformed; RESOURCE_EXHAUSTED: larger than
# its ingest limits) and the same batch is sent again, so that too is a refusal, not an outage.
REFUSALS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
WORKING_AFTER = 10.0
backoff_sleep = asyncio.sleep   # the wait between rounds of retries (tests record it instead)

class StreamFailed(Exception):
    """The stream ended or the collector reported an error; reconnect."""


class Shipper:
    def __init__(self, *, collectors: list[str], node_name: str, outbox: Outbox,
                 on_ack: Callable[[SealedBatch, pb.IngestReply, float], None],
                 token: str | None = None, tls: TlsFiles | None = None,
                 window: int = 8, backoff_initial: float = 0.1, backoff_max: float = 5.0,
                 failback_interval: float = 5.0, on_state: Callable[[bool, str], None] | None = None,
                 on_error: Callable[[str], None] | None = None):
        self.collectors = collectors
        self.node_name = node_name
        self.outbox = outbox
        self.on_ack = on_ack
        self.token = token
        self.tls = tls
        self.window = window
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.failback_interval = failback_interval
        self.on_state = on_state or (lambda connected, address: None)
        self.on_error = on_error or (lambda reason: None)
        self.connected_to: str | None = None
        self._sent_at: dict[int, float] = {}  # batches sent on the current stream, not yet acked
        # Whether the current stream proved it works (an acknowledgement, or WORKING_AFTER seconds
        # without failing): only such a stream resets the backoff. A collector that refuses us
        # fails right after the hello, and retrying that at once would be a storm.
        self._stream_acked = False
        self._stream_opened = 0.0
        self._refused_reason: str | None = None
        # Set by stop(). The run loop checks it as well as relying on cancellation, because a
        # cancellation can be lost inside a library (Python 3.11's asyncio.wait_for drops one that
        # arrives in the same loop step as the result): a stopped shipper must stop regardless.
        self._stopped = asyncio.Event()

    def _channel(self, address: str) -> grpc.aio.Channel:
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024),
                   ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                   # grpc core waits grpc.http2.ping_timeout_ms (60 s by default), not only
                   # keepalive_timeout_ms, for a ping's answer: without it a collector that is
                   # frozen (SIGSTOP, a hung VM) goes unnoticed for minutes.
                   ("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000),
                   ("grpc.http2.ping_timeout_ms", 5_000),
                   ("grpc.http2.max_pings_without_data", 0), ("grpc.keepalive_permit_without_calls", 1)]
        # No gRPC compression: the batcher compresses a batch's payload (gzip or zstd) once, as
        # it seals it, and the spool keeps it so (contract §3, [batch] compression).
        if self.tls is not None:
            return grpc.aio.secure_channel(address, channel_credentials(self.tls), options=options)
        return grpc.aio.insecure_channel(address, options=options)

    def stop(self) -> None:
        """Make `run` return at its next step; the caller cancels the task as well."""
        self._stopped.set()

    async def run(self) -> None:
        """Deliver until stopped or cancelled."""
        failures = 0
        index = 0
        while not self._stopped.is_set():
            address = self.collectors[index]
            try:
                await self._session(address, index)
                failures = 0
                index = 0  # a session ends normally only to fail back to the first collector
                continue
            # InvalidStateError: a write on a call the collector has already ended (it refused the
            # hello before we wrote it); RpcError covers grpc's other call failures.
            except (TimeoutError, grpc.RpcError, StreamFailed, OSError, asyncio.InvalidStateError) as exc:
                reason = (exc.details() if isinstance(exc, grpc.aio.AioRpcError)
                          else str(exc) or type(exc).__name__)
                refused = isinstance(exc, grpc.aio.AioRpcError) and exc.code() in REFUSALS
                if refused:
                    if reason != self._refused_reason:   # once per cause, not once per retry
                        log.error("collector %s refused this agent: %s", address, reason)
                    self._refused_reason = reason
                elif self.connected_to:
                    log.warning("lost collector %s: %s", address, reason)
                else:
                    log.debug("collector %s unavailable: %s", address, reason)
                if self.connected_to and not refused and self._stream_worked():
                    failures = 0
                self.on_error(reason or "stream failed")
            self.connected_to = None
            self.on_state(False, address)
            failures += 1
            index = (index + 1) % len(self.collectors)
            if index == 0:  # a whole round failed: back off before the next round
                delay = min(self.backoff_max, self.backoff_initial * 2 ** min(failures, 16))
                await backoff_sleep(delay * random.uniform(0.5, 1.0))

    def _stream_worked(self) -> bool:
        return self._stream_acked or asyncio.get_running_loop().time() - self._stream_opened >= WORKING_AFTER

    async def _session(self, address: str, index: int) -> None:
        metadata = (("authorization", f"Bearer {self.token}"),) if self.token else None
        async with self._channel(address) as channel:
            # asyncio.timeout, not wait_for: wait_for can drop a cancellation (see __init__).
            async with asyncio.timeout(5.0):
                await channel.channel_ready()
            stream: grpc.aio.StreamStreamMultiCallable[bytes, pb.IngestReply] = channel.stream_stream(
                _METHOD, request_serializer=None, response_deserializer=pb.IngestReply.FromString)
            call = stream(metadata=metadata)
            await call.write(pb.IngestRequest(hello=pb.Hello(node_name=self.node_name,
                                                              agent_version=__version__)).SerializeToString())
            self.outbox.rewind()
            self._sent_at.clear()
            self.connected_to = address
            self._stream_acked, self._stream_opened = False, asyncio.get_running_loop().time()
            self.on_state(True, address)
            log.info("connected to collector %s", address)
            in_flight = asyncio.Semaphore(self.window)
            tasks: list[asyncio.Task[Any]] = [asyncio.create_task(self._send_loop(call, in_flight)),
                                              asyncio.create_task(self._ack_loop(call, in_flight))]
            if index > 0:
                tasks.append(asyncio.create_task(self._wait_for_primary()))
            tasks.append(asyncio.create_task(self._stopped.wait()))
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raises the failure that ended the session
                if self._stopped.is_set():
                    return
                # The first collector is back: stop sending here and let what is in flight be
                # acknowledged, so that the batches are not stored by both collectors.
                tasks[0].cancel()
                deadline = asyncio.get_running_loop().time() + 5.0
                while self._sent_at and asyncio.get_running_loop().time() < deadline and not tasks[1].done():
                    await asyncio.wait([tasks[1]], timeout=0.05)
                if tasks[1].done():
                    tasks[1].result()
            finally:
                for task in tasks:
                    task.cancel()
                call.cancel()
            if index > 0:
                log.info("first collector %s is back; failing back", self.collectors[0])

    async def _send_loop(self, call: grpc.aio.StreamStreamCall[bytes, pb.IngestReply],
                         in_flight: asyncio.Semaphore) -> None:
        while True:
            await in_flight.acquire()
            batch = await self.outbox.next_unsent()
            self._sent_at[batch.batch_id] = time.monotonic()
            await call.write(_frame_batch(with_send_time(batch.payload)))

    async def _ack_loop(self, call: grpc.aio.StreamStreamCall[bytes, pb.IngestReply],
                        in_flight: asyncio.Semaphore) -> None:
        while True:
            read = await call.read()
            if read is grpc.aio.EOF:
                raise StreamFailed("collector closed the stream")
            reply = cast(pb.IngestReply, read)    # the grpc stubs type read() as object (EOF or a reply)
            if reply.error:
                raise StreamFailed(f"collector could not store batch {reply.batch_id}: {reply.error}")
            in_flight.release()
            self._stream_acked, self._refused_reason = True, None
            sent = self._sent_at.pop(reply.batch_id, None)
            batch = self.outbox.ack(reply.batch_id)
            if batch is not None:
                self.on_ack(batch, reply, time.monotonic() - sent if sent else 0.0)

    async def _wait_for_primary(self) -> None:
        """Return when the first collector answers again (ends the fallback session)."""
        while True:
            await asyncio.sleep(self.failback_interval)
            try:
                async with self._channel(self.collectors[0]) as channel:
                    async with asyncio.timeout(1.0):
                        await channel.channel_ready()
                    return
            except (TimeoutError, grpc.RpcError, OSError):
                continue
