"""A cancelled shipper always ends (issue: `make test` hung for good after `task.cancel()` on a
shipper whose collector refused it). Python 3.11's `asyncio.wait_for` returns the inner result
and drops the cancellation when both happen in the same loop step, so a shipper cancelled just
as `channel_ready()` completed went on retrying for ever. These tests cancel at many random
moments of the connect/refuse/back-off cycle; each cancellation must end the task within a bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import random

from fleetlog.agent import shipper as shipper_module
from fleetlog.agent.shipper import Shipper
from fleetlog.agent.spool import DiskSpool
from tests.bounded import run_bounded
from tests.harness import free_port, write_toml

ROUNDS = 60


def _cancel_at_random_moments(address: str, token: str | None, spool_dir, rng: random.Random) -> list[float]:
    """Start and cancel a shipper ROUNDS times; returns how long each cancellation took."""
    async def scenario() -> list[float]:
        outbox = DiskSpool(spool_dir, 1 << 20)
        took: list[float] = []
        loop = asyncio.get_running_loop()
        for _ in range(ROUNDS):
            ship = Shipper(collectors=[address], node_name="web-1", outbox=outbox, on_ack=lambda *a: None,
                           token=token, tls=None, backoff_initial=0.001, backoff_max=0.005)
            task = asyncio.create_task(ship.run())
            await asyncio.sleep(rng.uniform(0.0, 0.03))
            started = loop.time()
            task.cancel()
            await asyncio.wait({task}, timeout=10.0)
            assert task.done(), f"shipper still running 10 s after cancel: {task.get_stack(limit=4)}"
            took.append(loop.time() - started)
        outbox.close()
        return took
    return run_bounded(scenario(), timeout=120.0)


def test_a_refused_shipper_stops_whenever_it_is_cancelled(cluster, tmp_path, monkeypatch):
    tokens = write_toml(tmp_path / "tokens.toml", {"tokens": [
        {"name": "web-1", "sha256": hashlib.sha256(b"the-right-token").hexdigest(), "role": "agent"}]})
    collector = cluster.collector(tokens_file=str(tokens))
    monkeypatch.setattr(shipper_module, "backoff_sleep", lambda seconds: asyncio.sleep(0))
    took = _cancel_at_random_moments(collector.address, "a-wrong-token", tmp_path / "spool", random.Random(1))
    assert len(took) == ROUNDS


def test_a_shipper_without_a_listener_stops_whenever_it_is_cancelled(tmp_path, monkeypatch):
    monkeypatch.setattr(shipper_module, "backoff_sleep", lambda seconds: asyncio.sleep(0))
    took = _cancel_at_random_moments(f"127.0.0.1:{free_port()}", None, tmp_path / "spool", random.Random(2))
    assert len(took) == ROUNDS
