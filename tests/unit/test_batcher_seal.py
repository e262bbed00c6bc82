"""A sealed batch is assembled from its chunks serialized one at a time (agent/wire.py), and is the
same bytes as the Batch (or, zstd'd or gzipped, the Chunks) message serialized whole."""

from __future__ import annotations

import asyncio
import gzip

import pytest
import zstandard

from fleetlog.agent.batcher import Batcher, SealedBatch, build_chunk
from fleetlog.agent.parse import parse_auto
from fleetlog.agent.sources.base import Record, SourceBatch
from fleetlog.agent.wire import length_delimited, varint
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

LINES = ["2025-12-02T14:30:45.000001Z INFO req=r1 user=alice Authentication SUCCESS seq=1",
         '{"level": "error", "user": "bob", "msg": "nœud ✓ failed", "host": "other-node"}', "plain line",
         "x" * 300]


def source_batch(n: int, source: str) -> SourceBatch:
    records = [Record(1000 * n + i, parse_auto(LINES[i % len(LINES)] + f" {n}"), "app", i, i % 2, 7)
               for i in range(40 + n)]
    return SourceBatch(source=source, source_key=f"key-{source}", log_type="application", records=records,
                       checkpoint=None, read_bytes=10)


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_a_sealed_batch_is_the_message_serialized_whole(compression):
    sealed: list[SealedBatch] = []

    async def keep(batch: SealedBatch) -> None:
        sealed.append(batch)

    async def run() -> list[list[pb.Chunk]]:
        batcher = Batcher("default", 10_000, 1 << 30, 60.0, compression, keep, first_batch_id=300)
        chunks = []
        for round_ in range(3):
            batches = [source_batch(round_ * 3 + k, f"file:/var/log/{k}.log") for k in range(round_ + 1)]
            for batch in batches:
                await batcher.add(batch, None)
            chunks.append([build_chunk(batch, "default")[0] for batch in batches])
            await batcher.flush()
        return chunks

    chunks = asyncio.run(run())
    assert [b.batch_id for b in sealed] == [300, 301, 302]
    for batch, expected in zip(sealed, chunks):
        if compression != "none":
            codec, unpack = {"zstd": (pb.CODEC_ZSTD, zstandard.ZstdDecompressor().decompress),
                             "gzip": (pb.CODEC_GZIP, gzip.decompress)}[compression]
            whole = pb.Batch(batch_id=batch.batch_id, codec=codec)
            message = pb.Batch.FromString(batch.payload)
            assert unpack(message.packed) == pb.Chunks(chunks=expected).SerializeToString()
            whole.packed = message.packed
        else:
            whole = pb.Batch(batch_id=batch.batch_id, chunks=expected)
        assert batch.payload == whole.SerializeToString()


def test_varint_and_length_delimited():
    assert [varint(v) for v in (0, 1, 127, 128, 300, 1 << 35)] == [
        b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02", b"\x80\x80\x80\x80\x80\x01"]
    data = b"y" * 200
    assert length_delimited(b"\x1a", data) == b"\x1a\xc8\x01" + data
