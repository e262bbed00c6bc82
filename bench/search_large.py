"""Search latency over 100 million stored events (issue 30: the contract §5 search targets hold
over 10M and over 100M events).

The events are those of bench/search.py (50 hosts, 5,000 users, 8 events per request id, over
30 days), written straight through `SqliteStore.store_batch` in transactions of 200,000 events,
not through the daemons: the figure is the search, and the build takes long enough as it is.
The store is kept under var/bench-search/large-<N>/ and reused by later runs. A build that was
interrupted (Ctrl-C, a reboot) is extended from the events it holds at the next run, not
started again. The queries are the search section's (no regex: no index serves one, and a full
scan of 100M messages is minutes), sent to a real collector over gRPC.

    python bench/run.py --only search-large [--search-events-large N]
    python bench/run.py --skip search-large          (the rest of `make bench`, without it)
"""

from __future__ import annotations

import os
import pathlib
import shutil

from bench.common import ROOT, BenchContext, Row, peak_rss_mib
from bench.search import build, measure, size_row, stored_events, warm

KINDS = ("time range (1 h)", "request id", "user, 1 h", "user, all time", "host", "keyword")
PER_TRANSACTION = 40          # chunks of 5,000 events: 200,000 events a transaction


def db_path(events: int) -> pathlib.Path:
    return ROOT / "var" / "bench-search" / f"large-{events}" / "events.db"


def run(ctx: BenchContext) -> list[Row]:
    events = int(ctx.results.get("search_events_large") or 100_000_000)
    path = db_path(events)
    rows: list[Row] = []
    built, held = stored_events(path)
    if built == events:
        rows.append(Row("large search store: events", f"{held:,} (reused)"))
    else:
        if held > events:        # not this build's events: start again
            shutil.rmtree(path.parent)
            held = 0
        print(f"   building {events:,} events" + (f" from {held:,} (resumed)" if held else ""), flush=True)
        seconds = build(path, events, start=held, per_transaction=PER_TRANSACTION, progress=True)
        rows.append(Row(f"large search store: build {events - held:,} events" + (" (resumed)" if held else ""),
                        f"{seconds:.0f} s ({(events - held) / seconds:,.0f} events/s)"))
    size, files = size_row(path)
    size.figure = "large search store: size"
    rows.append(size)
    # Warm only what the page cache can hold beside everything else; past that the searches read
    # the disk, and the row says so.
    total = sum(f.stat().st_size for f in files)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if total < memory // 2:
        warmed = warm(files)
        warmed.figure = "large search store: read once into the page cache"
        rows.append(warmed)
    else:
        rows.append(Row("large search store: page cache", "not warmed: the store is over half the RAM"))

    from tests.harness import Cluster
    (ctx.work / "search-large").mkdir(parents=True, exist_ok=True)
    cluster = Cluster(ctx.work / "search-large")
    collector = cluster.collector("bench-collector", data_dir=str(path.parent))
    try:
        rows.extend(measure(collector.address, events, KINDS, label=f"search over {events:,} events,"))
        # Contract §5: under 250 MiB at any store size; this one opened it (and, the first time
        # after an upgrade, gave its files what the new layout adds) and answered the queries.
        rss = peak_rss_mib(collector.process.pid)
        rows.append(Row(f"collector peak RSS, {events:,} stored events (start + searches)", f"{rss:.0f} MiB",
                        "< 250 MiB", rss < 250))
    finally:
        cluster.stop_all()
    return rows
