"""Keepalive enforcement and streams per connection (issue 20): a peer that pings more often than every 5 s without data is
sent GOAWAY (too_many_pings) after two strikes, instead of keeping the collector busy; the
agents' own pings (every 10 s) are within the policy."""

from __future__ import annotations

import asyncio

import grpc

from tests.hostile_peer import run


async def _leaves_ready(address: str, ping_ms: int, watch_seconds: float) -> bool:
    options = [("grpc.keepalive_time_ms", ping_ms), ("grpc.keepalive_timeout_ms", 1_000),
               ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0),
               ("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        deadline = asyncio.get_running_loop().time() + watch_seconds
        state = channel.get_state()
        while state == grpc.ChannelConnectivity.READY:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(channel.wait_for_state_change(state), left)
            except TimeoutError:
                return False
            state = channel.get_state()
        return True


def test_a_peer_pinging_too_often_is_sent_away(cluster):
    collector = cluster.collector()
    assert run(_leaves_ready(collector.address, ping_ms=500, watch_seconds=20), timeout=40)


def test_a_peer_pinging_like_an_agent_keeps_its_connection(cluster):
    collector = cluster.collector()
    # Every 10 s as the agent does; watched for 25 s (two pings and a half).
    assert not run(_leaves_ready(collector.address, ping_ms=10_000, watch_seconds=25), timeout=40)


async def _streams_beyond_the_limit_wait(address: str, limit: int) -> tuple[bool, int]:
    """`limit` streams open on one connection, then one more: it is not served until one of the
    others ends. Returns (served while the others were open, acknowledged events afterwards)."""
    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
    from tests.hostile_peer import METHOD, batch, chunk, hello
    async with grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stream = channel.stream_stream(METHOD, request_serializer=None, response_deserializer=pb.IngestReply.FromString)
        calls = []
        for n in range(limit):
            call = stream()
            await call.write(hello(f"s{n}"))
            await call.write(batch(1, [chunk(1, source=f"file:/s{n}.log")]))
            assert (await call.read()).stored == 1
            calls.append(call)

        async def one_more() -> int:
            call = stream()
            await call.write(hello("extra"))
            await call.write(batch(1, [chunk(2, source="file:/extra.log")]))
            reply = await call.read()
            await call.done_writing()
            return reply.stored

        extra = asyncio.create_task(one_more())
        done, _ = await asyncio.wait([extra], timeout=0.5)
        served_early = bool(done)
        await calls[0].done_writing()
        assert await calls[0].read() is grpc.aio.EOF
        stored = await asyncio.wait_for(extra, 10)
        for call in calls[1:]:
            call.cancel()
        return served_early, stored


def test_streams_per_connection_are_limited(cluster):
    collector = cluster.collector(ingest={"max_streams_per_connection": 4})
    assert run(_streams_beyond_the_limit_wait(collector.address, 4), timeout=60) == (False, 2)
