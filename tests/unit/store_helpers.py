"""Building IncomingEvents for storage tests."""

from fleetlog.collector.store import IncomingEvents


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


def partition_files(main_path) -> list:
    """The partition files of a store, biggest first."""
    import pathlib
    folder = pathlib.Path(main_path).parent / "partitions"
    return sorted(folder.glob("*.db"), key=lambda p: -p.stat().st_size)


def partition_conn(main_path, partition=None):
    """A read-write connection to one partition's `events` (the biggest unless named) with the main
    file attached, so statements can name `events`, `meta`, `origins`, `checkpoints` or
    `chain_anchors` unqualified, as on a single-file store."""
    import sqlite3

    from fleetlog.collector.store.sqlite_query import register_functions
    path = partition or partition_files(main_path)[0]
    conn = sqlite3.connect(path)
    conn.execute("ATTACH DATABASE ? AS m", (str(main_path),))
    register_functions(conn)
    return conn


def event_rows(store, sql: str, params=()) -> list[tuple]:
    """`sql` (over `events`) run on every partition of a store, rows concatenated."""
    rows: list[tuple] = []
    for part in store.partitions():
        rows += store.partition_conn(part.name).execute(sql, params).fetchall()
    return rows


def event_count(store, where: str = "1", params=()) -> int:
    return sum(n for (n,) in event_rows(store, f"SELECT count(*) FROM events WHERE {where}", params))


def purge_once(store, config, now: int, chunk: int | None = None) -> tuple[list, dict[str, int]]:
    """One retention purge of `store` through a real StorageWriter and RetentionScheduler, bounded:
    (its runs, events purged per tier)."""
    import asyncio

    from fleetlog.collector.retention import RetentionScheduler
    from fleetlog.collector.store.sqlite import SqliteReader
    from fleetlog.collector.writer import StorageWriter
    from tests.bounded import run_bounded

    writer = StorageWriter(store)
    purged: dict[str, int] = {}
    options = {"chunk": chunk} if chunk is not None else {}
    scheduler = RetentionScheduler(config, lambda: SqliteReader(store.path), writer,
                                   on_purged=lambda t, n: purged.__setitem__(t, purged.get(t, 0) + n), **options)

    async def go():
        try:
            return await asyncio.wait_for(scheduler.purge_once(now=now), 60)
        finally:
            await scheduler.stop()
    try:
        return run_bounded(go(), timeout=120), purged
    finally:
        writer.stop()
