"""Building IncomingEvents for storage tests."""

from collector.store import IncomingEvents


def incoming(host: str, source_key: str, positions: list[int], *, messages: list[str] | None = None,
             users: list[str] | None = None, pids: list[int] | None = None, time_us: list[int] | None = None,
             tier: str = "general", level: int = 6, namespace: str = "default", log_type: str = "application",
             actions: list[str] | None = None, request_ids: list[str] | None = None) -> IncomingEvents:
    n = len(positions)
    return IncomingEvents(
        host=host, host_ip="127.0.0.1", source_key=source_key, source=f"file:/{source_key}", namespace=namespace,
        log_type=log_type, position=positions, time_us=time_us or [1_700_000_000_000_000 + p for p in positions],
        level=bytes([level] * n), message=messages or [f"line {p}" for p in positions],
        request_id=request_ids or [""] * n, user=users or [""] * n, action=actions or [""] * n, app=[""] * n,
        pid=pids or [0] * n, fields_json=[""] * n, flags=bytes(n), tier=[tier] * n)
