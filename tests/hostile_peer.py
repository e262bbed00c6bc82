"""A hostile or broken ingest peer: raw bytes on Ingest/Stream over a real gRPC channel.

Requests go out as bytes (no serializer), so tests can send exactly what a broken client would:
corrupt protobuf, columns that disagree, unknown codecs. Every call has a deadline.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from tests.bounded import run_bounded

METHOD = "/fleetlog.v1.Ingest/Stream"


def hello(name: str = "peer-1") -> bytes:
    return pb.IngestRequest(hello=pb.Hello(node_name=name)).SerializeToString()


def chunk(n: int, *, source: str = "file:/hostile.log", start: int = 0, message: str = "line",
          key: str = "") -> pb.Chunk:
    return pb.Chunk(source=source, source_key=key or source, namespace="default", log_type="application",
                    position=[start + i for i in range(n)], time_us=[1_764_000_000_000_000 + i for i in range(n)],
                    level=bytes([6] * n), message=[f"{message} {start + i}" for i in range(n)],
                    request_id=[""] * n, user=[""] * n, action=[""] * n, app=[""] * n, pid=[0] * n,
                    fields_json=[""] * n, flags=bytes(n))


DAY_US = 86400 * 1_000_000


def hostile_times_chunk(now_us: int, days: int = 1500, source: str = "file:/hostile-times.log") -> pb.Chunk:
    """Events "hostile 0", "hostile 1", ...: the first in the year 1, the second in 9999, then one
    on each of `days` distinct days back from `now_us` (issue 27: 1,500 days made 1,500 files)."""
    times = [-62_135_596_800_000_000, 253_402_300_799_999_999] + [now_us - k * DAY_US for k in range(1, days + 1)]
    c = chunk(len(times), source=source, message="hostile")
    del c.time_us[:]
    c.time_us.extend(times)
    return c


def batch(batch_id: int, chunks: Sequence[pb.Chunk], **fields) -> bytes:
    return pb.IngestRequest(batch=pb.Batch(batch_id=batch_id, chunks=list(chunks), **fields)).SerializeToString()


async def exchange(address: str, frames: Sequence[bytes], *, metadata=None, timeout: float = 20.0,
                   options=None, compression: grpc.Compression | None = None
                   ) -> tuple[list[pb.IngestReply], grpc.StatusCode | None, str]:
    """Send `frames` one after the other, each after the previous batch's ack (the hello and
    bad frames are not acknowledged); return the replies and how the stream ended.
    `compression`: gRPC's own, of every message (what agents before CODEC_GZIP asked for)."""
    replies: list[pb.IngestReply] = []
    async with grpc.aio.insecure_channel(address, options=options or [], compression=compression) as channel:
        call = channel.stream_stream(METHOD, request_serializer=None,
                                     response_deserializer=pb.IngestReply.FromString)(
            metadata=metadata, timeout=timeout)
        try:
            for frame in frames:
                await call.write(frame)
                request = _try_decode(frame)
                if request is not None and request.HasField("batch"):
                    replies.append(await call.read())
            await call.done_writing()
            while (reply := await call.read()) is not grpc.aio.EOF:
                replies.append(reply)
            return replies, None, ""
        except grpc.aio.AioRpcError as exc:
            return replies, exc.code(), exc.details() or ""


def _try_decode(frame: bytes) -> pb.IngestRequest | None:
    try:
        return pb.IngestRequest.FromString(frame)
    except Exception:  # noqa: BLE001 — a deliberately corrupt frame
        return None


def run(coro, timeout: float = 60.0):
    return run_bounded(coro, timeout)
