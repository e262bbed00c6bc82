"""Keepalive enforcement (issue 20): a peer that pings more often than every 5 s without data is
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
