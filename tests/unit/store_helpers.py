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

    from tests.unit.row_model_sql import register_functions
    path = partition or partition_files(main_path)[0]
    conn = sqlite3.connect(path)
    conn.execute("ATTACH DATABASE ? AS m", (str(main_path),))
    register_functions(conn)
    return conn


def partition_events(conn, source_keys: dict) -> list[list]:
    """Every event a partition file holds (ROW_COLUMNS order, seq order), whatever it is stored
    as: decoded blocks (ids filled in, `hash` the whole link, recomputed over each run from the
    block's own links) and rows of the row model not yet converted."""
    import hashlib

    from fleetlog.collector.store import ROW_COLUMNS
    from fleetlog.collector.store.blocks import decode_block, fill_ids, links_of_run
    from fleetlog.common import chain

    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    rows: list[list] = []
    if "blocks" in tables:
        canonical = [ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS]

        def step(link, row):
            values = [row[i] for i in canonical]
            return hashlib.sha256(link + hashlib.sha256(chain.canonical_values(values)).digest()).digest()

        for (data,) in conn.execute("SELECT data FROM blocks ORDER BY min_seq"):
            block = decode_block(bytes(data))
            fill_ids(block.rows, source_keys)
            links = {}
            for run in block.runs:
                links.update(links_of_run(block.rows, run, step))
            for row in block.rows:
                row[-1] = links[row[0]]
            rows += block.rows
    if "events" in tables:
        rows += [list(r) for r in conn.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM events")]
    return sorted(rows, key=lambda r: r[0])


def materialised(conn, source_keys: dict):
    """An in-memory SQLite database whose `events` (and `events_fts`) hold a partition's events."""
    import sqlite3

    from fleetlog.collector.store import ROW_COLUMNS
    from fleetlog.collector.store.schema import ROW_MODEL_SCHEMA
    from tests.unit.row_model_sql import register_functions
    memory = sqlite3.connect(":memory:")
    memory.executescript(ROW_MODEL_SCHEMA)
    register_functions(memory)
    rows = partition_events(conn, source_keys)
    memory.executemany(f"INSERT INTO events({', '.join(ROW_COLUMNS)}) VALUES ({','.join('?' * len(ROW_COLUMNS))})",
                       rows)
    memory.executemany("INSERT INTO events_fts(rowid, message) VALUES (?, ?)", ((r[0], r[18]) for r in rows))
    return memory


def source_keys_of(main_conn) -> dict:
    return {oid: (host, key) for oid, host, key in main_conn.execute("SELECT id, host, source_key FROM origins")}


def event_rows(store, sql: str, params=()) -> list[tuple]:
    """`sql` (over `events`, and `events_fts`) run on every partition of a store, rows
    concatenated: each partition's events materialised as rows of the row model."""
    rows: list[tuple] = []
    keys = source_keys_of(store.conn)
    for part in store.partitions():
        memory = materialised(store.partition_conn(part.name), keys)
        try:
            rows += memory.execute(sql, params).fetchall()
        finally:
            memory.close()
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
