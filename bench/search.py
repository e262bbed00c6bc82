"""Search latency over a large store (contract §5: indexed searches < 200 ms, keyword < 1 s over
10 million events).

The store is written directly through the storage layer (`SqliteStore.store_batch`: the same
rows, hash chain and full-text index that ingestion writes), in large transactions with
`synchronous = off` since a crash only costs a rebuild. It is kept under var/bench-search/ and
reused by later runs while it holds at most 5 % more than the wanted number of events (the
collector-RSS row ingests 100,000 more each run), so only every few runs pay the build (its time
is printed as a figure). Queries then go to a real collector process over gRPC,
as `fleetlog search` sends them (newest first, limit 1000, the audit event written), and each
figure is the p50/p95 of 20 different queries of that kind.

    python bench/run.py --only search [--search-events N]
"""

from __future__ import annotations

import pathlib
import random
import shutil
import sqlite3
import statistics
import time

from bench.common import ROOT, BenchContext, Row
from fleetlog.collector.store import IncomingEvents
from fleetlog.collector.store.sqlite import SqliteStore

BASE_US = 1_764_547_200_000_000          # 2025-12-01T00:00:00Z
SPAN_US = 30 * 86_400 * 1_000_000        # the events spread over 30 days
HOSTS = [f"web-{i:02d}" for i in range(1, 41)] + [f"db-{i:02d}" for i in range(1, 11)]
USERS = 5000
EVENTS_PER_REQUEST = 8
CHUNK = 5000
KEYWORD = "quarantined"                  # in 1 message of 256
REGEX = r"code=5\d\d\b"                  # matches about 1 message in 100

_TEMPLATES = [
    "Authentication SUCCESS via LDAP for {user} code=200 took {ms}ms",
    "GET /api/v1/orders/{n} code=200 bytes={bytes} took {ms}ms",
    "POST /api/v1/cart code=201 items={items} took {ms}ms",
    "cache miss for key session:{n} refilled in {ms}ms",
    "connection pool size={items} idle={ms} waiting=0",
    "payment authorised amount={bytes} currency=EUR code=200",
]


def _message(i: int, rng: random.Random) -> tuple[str, int]:
    """A ~120-byte message and its level."""
    if i % 256 == 17:
        return f"file upload {i} quarantined by scanner, signature Eicar-Test-{i % 7}", 4
    if i % 100 == 3:
        return f"GET /api/v1/orders/{i} code={500 + i % 4} upstream reset took {rng.randint(1, 900)}ms", 3
    template = _TEMPLATES[i % len(_TEMPLATES)]
    return template.format(user=f"user{i % USERS}", n=i, ms=rng.randint(1, 900), bytes=rng.randint(100, 90000),
                           items=i % 17), 6


def db_path(events: int) -> pathlib.Path:
    return ROOT / "var" / "bench-search" / f"events-{events}" / "events.db"


def stored_events(path: pathlib.Path) -> tuple[int, int]:
    """(events the store was built with, events it holds now: each run's ingest row adds some)."""
    if not path.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('bench_events', 'last_seq')"))
        return int(meta.get("bench_events", 0)), int(meta.get("last_seq", 0))
    except sqlite3.Error:
        return 0, 0


def build(path: pathlib.Path, events: int, start: int = 0, per_transaction: int = 20,
          progress: bool = False) -> float:
    """Write events `start`..`events` (a store that holds the first `start` is extended; 0 builds
    it anew); returns seconds taken. Each chunk's values come from a generator seeded by its
    first event, so a build resumed after an interruption holds what one uninterrupted build does."""
    if start == 0 and path.parent.exists():
        shutil.rmtree(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    store = SqliteStore(str(path), "normal", collector="bench-collector")
    store.conn.execute("PRAGMA synchronous=OFF")
    step = SPAN_US // events
    pending: list[IncomingEvents] = []
    for first in range(start, events, CHUNK):
        count = min(CHUNK, events - first)
        host_index = (first // CHUNK) % len(HOSTS)
        host = HOSTS[host_index]
        rng = random.Random(first)
        messages, levels = zip(*(_message(i, rng) for i in range(first, first + count)))
        pending.append(IncomingEvents(
            host=host, host_ip=f"10.0.{host_index // 250}.{host_index % 250 + 1}", source_key=f"file:{host}",
            source="file:/var/log/app/app.log", namespace="default", log_type="application",
            position=range(first, first + count),
            time_us=[BASE_US + i * step for i in range(first, first + count)],
            level=bytes(levels), message=messages,
            request_id=[f"r{i // EVENTS_PER_REQUEST:08d}" for i in range(first, first + count)],
            user=[f"user{(i * 7919) % USERS}" for i in range(first, first + count)],
            action=[""] * count, app=["shop"] * count, pid=[1000 + host_index] * count,
            fields_json=[""] * count, flags=bytes(count), tier=["general"] * count))
        if len(pending) == per_transaction or first + count >= events:
            store.store_batch(pending, BASE_US + SPAN_US)
            pending = []
            done = first + count
            if progress and done % 5_000_000 < CHUNK * per_transaction:
                rate = (done - start) / (time.monotonic() - started)
                print(f"   {done:,} of {events:,} events ({rate:,.0f} events/s)", flush=True)
    store.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('bench_events', ?)", (str(events),))
    store.close()
    return time.monotonic() - started


def size_row(path: pathlib.Path) -> tuple[Row, list[pathlib.Path]]:
    files = [p for p in path.parent.rglob("*") if p.is_file()]
    return Row("search store: size", f"{sum(p.stat().st_size for p in files) / 2**30:.2f} GiB "
               f"({len(list(path.parent.glob('partitions/*.db')))} partitions)"), files


def warm(files: list[pathlib.Path]) -> Row:
    """Read the store once, so every run measures the same warm page cache: a running collector's
    store is in it, and the sections before this one write gigabytes that evict it (a cold read
    of gigabytes is the disk's speed, not the query plan's)."""
    started = time.monotonic()
    for file in files:
        with open(file, "rb") as handle:
            while handle.read(16 << 20):
                pass
    return Row("search store: read once into the page cache", f"{time.monotonic() - started:.1f} s")


def _queries(events: int) -> dict[str, list[dict[str, str]]]:
    rng = random.Random(60)
    hour = 3600 * 1_000_000

    def rfc(us: int) -> str:
        import datetime as dt
        return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    windows = [BASE_US + rng.randrange(0, SPAN_US - hour) for _ in range(20)]
    requests = [rng.randrange(0, events // EVENTS_PER_REQUEST) for _ in range(20)]
    return {
        "time range (1 h)": [{"since": rfc(w), "until": rfc(w + hour)} for w in windows],
        "request id": [{"request_id": f"r{r:08d}"} for r in requests],
        "user, 1 h": [{"user": f"user{rng.randrange(USERS)}", "since": rfc(w), "until": rfc(w + hour)}
                      for w in windows],
        "user, all time": [{"user": f"user{rng.randrange(USERS)}"} for _ in range(20)],
        "host": [{"host": rng.choice(HOSTS)} for _ in range(20)],
        "keyword": [{"message": KEYWORD}] * 10 + [{"message": f"Eicar-Test-{i % 7}"} for i in range(10)],
        "regex": [{"message_regex": REGEX}] * 10 + [{"message_regex": rf"code=50{i % 4}\b"} for i in range(10)],
    }


# contract §5: indexed searches < 200 ms, keyword < 1 s. It sets none for a regex, which no index can
# serve: one that matches nothing reads every message (the p95 below is that full scan). The
# user search the target holds for is issue 30's, over an hour (as log search tools default to a
# recent window); over all time (`fleetlog search --user X` without --since) its 1,000 newest
# events lie one in each of 1,000 blocks, every one holding every user, and it is reported beside.
TARGETS = {"time range (1 h)": 0.2, "request id": 0.2, "user, 1 h": 0.2, "user, all time": None, "host": 0.2,
           "keyword": 1.0, "regex": None}
UNTARGETED = {"regex": "none in contract §5", "user, all time": "none: issue 30's is over 1 h"}


def _measure(address: str, filters: dict[str, str]) -> tuple[float, int]:
    import grpc

    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        stub = pb_grpc.QueryStub(channel)
        stub.Status(pb.StatusRequest(), timeout=30)   # connect outside the timed part
        request = pb.SearchRequest(filters=pb.Filters(**filters), limit=1000, order="desc", purpose="search")
        started = time.perf_counter()
        try:
            count = sum(len(page.events_json) for page in stub.Search(request, timeout=120))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            count = -1      # stopped by the collector's [storage] query_timeout: counted, not fatal
        return time.perf_counter() - started, count


def measure(address: str, events: int, kinds: tuple[str, ...] = tuple(TARGETS), label: str = "search") -> list[Row]:
    """p50 / p95 of the 20 queries of each kind in `kinds`, sent to the collector at `address`."""
    rows: list[Row] = []
    queries = _queries(events)
    for figure in kinds:
        filter_list = queries[figure]
        _measure(address, filter_list[0])     # warm the connection and the query plan
        timings: list[float] = []
        counts: list[int] = []
        for filters in filter_list:
            seconds, count = _measure(address, filters)
            timings.append(seconds)
            counts.append(count)
        stopped = counts.count(-1)
        counts = [c for c in counts if c >= 0] or [0]
        timings.sort()
        p50 = statistics.median(timings)
        p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
        target = TARGETS[figure]
        measured = f"{p50 * 1000:.0f} ms / {p95 * 1000:.0f} ms"
        if stopped:
            measured += f"; {stopped} of {len(filter_list)} stopped by the query timeout"
        figure_label = f"{label} {figure}: p50 / p95 ({min(counts)}-{max(counts)} rows)"
        if target is None:
            rows.append(Row(figure_label, measured, UNTARGETED[figure]))
        else:
            rows.append(Row(figure_label, measured, f"< {target * 1000:.0f} ms", p95 < target and not stopped))
    return rows


def run(ctx: BenchContext) -> list[Row]:
    events = int(ctx.results.get("search_events") or 10_000_000)
    path = db_path(events)
    rows: list[Row] = []
    built, held = stored_events(path)
    # Reused while the ingest rows of earlier runs have added at most 5 % (so the searches run
    # over 10.0-10.5 million events); then built again.
    if built == events and held <= events * 1.05:
        rows.append(Row("search store: events", f"{held:,} (reused; built with {events:,})"))
    else:
        seconds = build(path, events)
        rows.append(Row(f"search store: build {events:,} events", f"{seconds:.0f} s ({events / seconds:,.0f} events/s)"))
    size, files = size_row(path)
    rows.extend([size, warm(files)])

    from tests.harness import Cluster
    cluster = Cluster(ctx.work / "search")
    (ctx.work / "search").mkdir(parents=True, exist_ok=True)
    collector = cluster.collector("bench-collector", data_dir=str(path.parent))
    try:
        rows.extend(measure(collector.address, events))
        rows.append(_rss_while_ingesting(ctx, cluster, collector, events))
    finally:
        cluster.stop_all()
    ctx.results["search"] = {r.figure: r.measured for r in rows}
    return rows


INGEST_LINES = 100_000


def _rss_while_ingesting(ctx: BenchContext, cluster, collector, events: int) -> Row:
    """The collector's peak RSS over a store of `events`: it has answered the queries above, and
    now an agent ships INGEST_LINES more (they stay in the reused store: 1 % per run; see run())."""
    from bench.common import peak_rss_mib, write_workload
    from tests.harness import wait_for

    before = collector.metric("fleetlog_collector_events_stored_total")
    path = ctx.work / "search" / "ingest.log"
    # Lines of another run would be duplicates (same content, same ids): start where none was.
    write_workload(path, INGEST_LINES, start=int(time.time()) * 100)
    cluster.agent("bench-search-agent", [collector], [{"type": "file", "paths": [str(path)]}],
                  batch={"max_wait": "100ms", "max_events": 5000})
    wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total") >= before + INGEST_LINES,
             timeout=300, what=f"{INGEST_LINES} events stored", interval=0.2)
    rss = peak_rss_mib(collector.process.pid)
    return Row(f"collector peak RSS, {events:,} stored events (searches + ingest)", f"{rss:.0f} MiB",
               "< 250 MiB", rss < 250)
