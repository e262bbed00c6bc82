"""Bounded peers (issue 20): a peer sending maximum-size batches as fast as it can keeps the
collector under its RSS target (contract §5: 250 MiB), because the admission budget counts bytes as
well as events and gRPC refuses messages over ingest.max_message_bytes before reading them."""

from __future__ import annotations

import asyncio
import pathlib

import grpc
import zstandard

from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from tests.hostile_peer import METHOD, chunk, hello, run

RSS_TARGET_MIB = 250
EVENTS = 3_800                  # of 1,000 bytes: just under MAX_MESSAGE
MAX_MESSAGE = 4 << 20           # the collector's default ingest.max_message_bytes


def _peak_rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def _max_size_batch(stream: int, compressed: bool) -> bytes:
    """Just under 4 MiB of events (after expansion, for zstd); every stream its own source, so
    the first copy is stored and the rest are duplicates the writer must still check."""
    events = chunk(EVENTS, source=f"file:/flood-{stream}.log", message="m" * 1_000)
    if compressed:
        packed = zstandard.ZstdCompressor(level=1).compress(pb.Chunks(chunks=[events]).SerializeToString())
        message = pb.Batch(batch_id=0, codec=pb.CODEC_ZSTD, packed=packed)
    else:
        message = pb.Batch(batch_id=0, chunks=[events])
    assert len(message.SerializeToString()) < MAX_MESSAGE
    return pb.IngestRequest(batch=message).SerializeToString()


async def _flood(address: str, streams: int, batches: int) -> list[int]:
    """Each stream writes `batches` maximum-size batches without waiting for acknowledgements
    (gRPC flow control is the only brake) and counts the acknowledgements it gets."""
    channels = [grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", MAX_MESSAGE),
                                                            ("grpc.use_local_subchannel_pool", 1)])
                for _ in range(2)]
    try:
        async def one(n: int) -> int:
            frame = _max_size_batch(n, compressed=n % 2 == 1)
            call = channels[n % 2].stream_stream(METHOD, request_serializer=None,
                                                 response_deserializer=pb.IngestReply.FromString)()
            await call.write(hello(f"flood-{n}"))

            async def write_all() -> None:
                for i in range(batches):
                    # batch_id is field 1 of Batch: appended, it overrides the 0 inside the frame
                    await call.write(frame + pb.IngestRequest(batch=pb.Batch(batch_id=i + 1)).SerializeToString())
                await call.done_writing()

            writer = asyncio.create_task(write_all())
            acks = 0
            while (reply := await call.read()) is not grpc.aio.EOF:
                assert not reply.error, reply.error
                acks += 1
            await writer
            return acks

        return await asyncio.gather(*(one(n) for n in range(streams)))
    finally:
        for channel in channels:
            await channel.close()


def test_maximum_size_batches_as_fast_as_possible_stay_under_the_rss_target(cluster):
    collector = cluster.collector()
    # One peer, two connections, four streams on each (half of them zstd that expands to just
    # under the limit): 64 messages of ~4 MiB written as fast as gRPC takes them.
    acks = run(_flood(collector.address, streams=8, batches=8), timeout=170)
    assert acks == [8] * 8
    peak = _peak_rss_mib(collector.process.pid)
    print(f"collector peak RSS {peak:.0f} MiB after 64 batches of ~4 MiB on 8 streams")
    assert peak < RSS_TARGET_MIB, f"collector peak RSS {peak:.0f} MiB"
    stored = collector.metric("fleetlog_collector_events_stored_total")
    duplicates = collector.metric("fleetlog_collector_events_duplicate_total")
    assert (stored, duplicates) == (8 * EVENTS, 8 * 7 * EVENTS)
