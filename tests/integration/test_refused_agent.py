"""An agent the collector refuses (bad token) backs off exponentially instead of retrying in a
tight loop, and says why once, not once per attempt. A real collector refuses; the shipper's
sleeps are recorded instead of waited, so the test checks the policy, not the clock."""

from __future__ import annotations

import asyncio
import hashlib
import logging

from fleetlog.agent import shipper as shipper_module
from fleetlog.agent.shipper import Shipper
from fleetlog.agent.spool import DiskSpool
from fleetlog.collector.auth_failures import TOO_MANY_FAILURES
from tests.bounded import run_bounded
from tests.harness import write_toml


def test_a_refused_agent_backs_off_and_logs_the_refusal_once(cluster, tmp_path, caplog, monkeypatch):
    tokens = write_toml(tmp_path / "tokens.toml", {"tokens": [
        {"name": "web-1", "sha256": hashlib.sha256(b"the-right-token").hexdigest(), "role": "agent"}]})
    collector = cluster.collector(tokens_file=str(tokens))
    delays: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(shipper_module, "backoff_sleep", recorded_sleep)
    errors: list[str] = []

    async def scenario() -> None:
        outbox = DiskSpool(tmp_path / "spool", 1 << 20)
        ship = Shipper(collectors=[collector.address], node_name="web-1", outbox=outbox,
                       on_ack=lambda *a: None, token="a-wrong-token",
                       tls=None, on_error=errors.append)
        task = asyncio.create_task(ship.run())
        while len(delays) < 8 and not task.done():
            await asyncio.wait([task], timeout=0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="fleetlog.agent.shipper"):
        run_bounded(scenario(), timeout=60)
    assert len(delays) >= 8 and len(errors) >= 8
    # Exponential with jitter in [0.5, 1]: 0.2, 0.4, 0.8, ... capped at 5 s.
    for n, delay in enumerate(delays[:8], start=1):
        ceiling = min(5.0, 0.1 * 2 ** n)
        assert ceiling * 0.5 <= delay <= ceiling, (n, delays)
    # Once per cause: the token's refusal first; on a slow machine the attempts may pass the
    # collector's limit of failed authentications an address may make, a second cause, said once.
    refusals = [r for r in caplog.records if "refused this agent" in r.getMessage()]
    causes = [r.args[1] for r in refusals]
    assert causes in (["unknown token"], ["unknown token", TOO_MANY_FAILURES + "; try again within a minute"]), causes
    assert {r.levelname for r in refusals} == {"ERROR"}
