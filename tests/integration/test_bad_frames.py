"""Malformed frames from a peer (issue 20): INVALID_ARGUMENT with a reason a person can act on,
one log line per peer and cause without a traceback, counted by reason, and the batches the
stream had acknowledged before stay stored."""

from __future__ import annotations

import gzip
import hashlib

import grpc
import pytest
import zstandard

from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from tests.harness import Cluster, search_json, wait_for, write_toml
from tests.hostile_peer import batch, chunk, exchange, hello, run

REJECTED = "fleetlog_collector_requests_rejected_total"


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("bad-frames"))
    try:
        yield cluster.collector(ingest={"max_batch_events": 1000, "max_message_bytes": "1MiB",
                                        "max_pending_bytes": "8MiB"})
    finally:
        cluster.stop_all()


def _columns_disagree() -> pb.Chunk:
    c = chunk(3, start=100)
    del c.message[-1]
    return c


def _bad(field: str, value) -> pb.Chunk:
    c = chunk(2, start=200)
    if field == "level":
        c.level = bytes([6, value])
    elif field == "time_us":
        c.time_us[1] = value
    elif field == "position":
        c.position[1] = value
    elif field == "fields_json":
        c.fields_json[1] = value
    return c


def _bomb() -> pb.Batch:
    """A tiny zstd payload that expands far beyond max_message_bytes."""
    payload = zstandard.ZstdCompressor().compress(b"\0" * (64 << 20))
    return pb.Batch(batch_id=2, codec=pb.CODEC_ZSTD, packed=payload)


def _gzip(packed: bytes) -> bytes:
    return pb.IngestRequest(batch=pb.Batch(batch_id=2, codec=pb.CODEC_GZIP, packed=packed)).SerializeToString()


_CHUNKS = pb.Chunks(chunks=[chunk(3, start=900)]).SerializeToString()


CASES = {
    # name: (bad frame, metric reason, words the message must contain)
    "corrupt protobuf": (b"\x12\xff\xff\xff\x0fnot-a-protobuf", "corrupt_message", "not a valid"),
    "truncated frame": (batch(2, [chunk(5)])[:-7], "corrupt_message", "not a valid"),
    "columns disagree": (batch(2, [_columns_disagree()]), "bad_columns", "column message has 2 values for 3"),
    "unknown codec": (pb.IngestRequest(batch=pb.Batch(batch_id=2, codec=7, packed=b"x")).SerializeToString(),
                      "unknown_codec", "unknown codec 7"),
    "corrupt zstd": (pb.IngestRequest(batch=pb.Batch(batch_id=2, codec=pb.CODEC_ZSTD, packed=b"garbage"))
                     .SerializeToString(), "bad_compression", "zstd"),
    "zstd bomb": (pb.IngestRequest(batch=_bomb()).SerializeToString(), "too_large", "max_message_bytes"),
    "corrupt gzip": (_gzip(b"garbage"), "bad_compression", "cannot decode its gzip payload"),
    "gzip cut short": (_gzip(gzip.compress(_CHUNKS)[:-12]), "bad_compression", "cut short"),
    "bytes after gzip": (_gzip(gzip.compress(_CHUNKS) + b"tail"), "bad_compression", "bytes after"),
    "gzip bomb": (_gzip(gzip.compress(b"\0" * (16 << 20), compresslevel=9)), "too_large", "max_message_bytes"),
    "too many events": (batch(2, [chunk(600, start=300), chunk(600, source="file:/b.log")]),
                        "too_many_events", "max_batch_events (1000)"),
    "level out of range": (batch(2, [_bad("level", 200)]), "bad_value", "level 200 out of range"),
    "absurd time": (batch(2, [_bad("time_us", 1 << 62)]), "bad_value", "outside the years"),
    "position beyond int64": (batch(2, [_bad("position", 1 << 63)]), "bad_value", "position"),
    "fields not an object": (batch(2, [_bad("fields_json", "[1, 2")]), "bad_value", "not a JSON object"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_frame_is_refused_and_earlier_batches_stay_stored(collector, case):
    frame, reason, words = CASES[case]
    source = f"file:/{case.replace(' ', '-')}.log"
    before = collector.metric(REJECTED, {"reason": reason})
    good = batch(1, [chunk(4, source=source)])
    replies, code, details = run(exchange(collector.address, [hello(), good, frame]))
    assert [(r.batch_id, r.stored, r.error) for r in replies] == [(1, 4, "")]
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert words in details
    assert collector.metric(REJECTED, {"reason": reason}) == before + 1
    stored = search_json(collector, "--source", source)
    assert sorted(e["message"] for e in stored) == [f"line {i}" for i in range(4)]
    assert "Traceback" not in collector.log()


def test_batches_from_earlier_agents_gzipped_by_grpc_are_stored(collector):
    """Agents before CODEC_GZIP had gRPC gzip each message; the collector still takes them, and a
    gzip batch (CODEC_GZIP) inside such a stream too."""
    plain = batch(1, [chunk(4, source="file:/grpc-gzip.log")])
    packed = pb.Chunks(chunks=[chunk(3, start=10, source="file:/grpc-gzip.log")]).SerializeToString()
    replies, code, details = run(exchange(collector.address, [hello(), plain, _gzip(gzip.compress(packed))],
                                          compression=grpc.Compression.Gzip))
    assert code is None, (code, details)
    assert [(r.batch_id, r.stored, r.error) for r in replies] == [(1, 4, ""), (2, 3, "")]
    stored = search_json(collector, "--source", "file:/grpc-gzip.log")
    assert sorted(e["message"] for e in stored) == sorted([f"line {i}" for i in range(4)] +
                                                          [f"line {i}" for i in range(10, 13)])


def test_a_corrupt_first_frame_is_refused_too(collector):
    replies, code, details = run(exchange(collector.address, [b"\x0a\x05\xff\xfe"]))
    assert replies == [] and code == grpc.StatusCode.INVALID_ARGUMENT and "not a valid" in details


def test_the_same_cause_from_the_same_peer_is_logged_once(collector):
    before = collector.metric(REJECTED, {"reason": "unknown_codec"})
    frame = pb.IngestRequest(batch=pb.Batch(batch_id=9, codec=42)).SerializeToString()
    for _ in range(20):
        _, code, _ = run(exchange(collector.address, [hello("noisy"), frame]))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert collector.metric(REJECTED, {"reason": "unknown_codec"}) == before + 20
    # One line for this peer and cause in the whole run (the parametrised case above may have
    # written it first), however many times it was refused.
    lines = [line for line in collector.log().splitlines() if "refused a request from 127.0.0.1 (unknown_codec)" in line]
    assert len(lines) == 1, lines
    assert "Traceback" not in collector.log()


def test_a_message_over_the_size_limit_is_refused_before_it_is_read(collector):
    big = batch(1, [chunk(10, message="x" * 200_000)])   # about 2 MiB, the limit is 1 MiB
    replies, code, details = run(exchange(collector.address, [hello(), big]))
    assert replies == [] and code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    assert "Traceback" not in collector.log()


def test_nothing_an_unauthenticated_peer_sends_is_decoded(cluster, tmp_path):
    tokens = write_toml(tmp_path / "tokens.toml", {"tokens": [
        {"name": "web-1", "sha256": hashlib.sha256(b"good-token").hexdigest(), "role": "agent"},
        {"name": "ops", "sha256": hashlib.sha256(b"admin-token").hexdigest(), "role": "admin"}]})
    collector = cluster.collector(tokens_file=str(tokens))
    corrupt = b"\x12\xff\xff\xff\x0fnot-a-protobuf"
    for metadata in (None, (("authorization", "Bearer wrong-token"),)):
        _, code, details = run(exchange(collector.address, [corrupt], metadata=metadata))
        # Refused for who it is, not for what it sent: the bytes were never decoded.
        assert code == grpc.StatusCode.UNAUTHENTICATED, (code, details)

    async def unary_garbage() -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(collector.address) as channel:
            status = channel.unary_unary("/fleetlog.v1.Query/Status", request_serializer=None,
                                         response_deserializer=None)
            try:
                await status(b"\xff\xff\xff", timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
        return grpc.StatusCode.OK

    assert run(unary_garbage()) == grpc.StatusCode.UNAUTHENTICATED
    wait_for(lambda: collector.metric(REJECTED, {"reason": "unauthenticated"}) == 3, 10, "3 refusals counted")
    assert collector.metric(REJECTED, {"reason": "corrupt_message"}) == 0
    # With a valid token the same corrupt frame is decoded, and refused for what it is.
    _, code, _ = run(exchange(collector.address, [corrupt], metadata=(("authorization", "Bearer good-token"),)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Traceback" not in collector.log()
