"""`POST /api/v1/settings/forwarders/{name}/test`: one test event through a forwarder's own
transport, on a sink of its own (the running forwarder and its cursor are untouched), and what the
destination answered: delivered (a stream's peer acknowledged every byte; a file written), or the
error."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fleetlog.collector.forward import build_sink
from fleetlog.common.errors import ConfigError, FleetlogError
from fleetlog.common.timefmt import format_us, now_us

TEST_TIMEOUT = 15.0


def test_event(node_name: str, user: str, forwarder: str) -> dict[str, Any]:
    now = format_us(now_us())
    return {"id": secrets.token_hex(16), "seq": 0, "time": now, "received_at": now, "host": node_name,
            "host_ip": "", "collector": node_name, "namespace": "_collector", "source": "collector",
            "log_type": "audit", "app": "fleetlog-collector", "pid": 0, "level": "notice", "request_id": "",
            "user": user, "action": "settings/forwarders.test",
            "message": f"fleetlog test event: forwarder {forwarder} on collector {node_name}, sent by {user}",
            "fields": {"test": True}, "tier": "general", "truncated": False}


def _send(config: Any, event: dict[str, Any], holder: list[Any]) -> dict[str, Any]:
    try:
        sink = build_sink(config)
    except ConfigError as exc:
        return {"ok": False, "target": "", "answer": str(exc)}
    holder.append(sink)
    try:
        sink.send([event])
        if sink.delivered(True):
            return {"ok": True, "target": sink.target, "answer": "delivered: the destination accepted the event"}
        return {"ok": False, "target": sink.target, "answer": "sent, but the destination did not confirm it"}
    except (FleetlogError, OSError) as exc:
        return {"ok": False, "target": sink.target, "answer": str(exc)}
    finally:
        sink.close()


async def send_test_event(config: Any, node_name: str, user: str) -> dict[str, Any]:
    event = test_event(node_name, user, config.name)
    holder: list[Any] = []
    task = asyncio.ensure_future(asyncio.to_thread(_send, config, event, holder))
    done, _ = await asyncio.wait({task}, timeout=TEST_TIMEOUT)
    if not done:
        for sink in holder:
            sink.abort()
        return {"ok": False, "target": holder[0].target if holder else "",
                "answer": f"no answer within {TEST_TIMEOUT:.0f} s"}
    return task.result()
