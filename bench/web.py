"""The web console over the 10-million-event store of bench/search.py (issue 17: the events page
and the API's first page under 300 ms for the filters the CLI benchmark measures).

A real collector with `[web]` serves the store; each figure is the p50/p95 of the 20 queries of
that kind from bench/search.py, timed on loopback from the request to the last byte of the reply
(the server's time plus a loopback round trip); regex queries are left out (no index serves
them: one matching nothing is the search section's full scan): `/api/v1/events?...` (JSON, 100 events, newest
first; beside it the query engine's own time from the reply) and `/events?...` (the HTML page with
the same 100 rows). The chart's counts (`/api/v1/histogram` over one day, ~333,000 events, and
over 1 h) are measured too, without a target. Each request is audited like a CLI search, as in production.

    python bench/run.py --only web [--search-events N]
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.parse
import urllib.request

from bench.common import BenchContext, Row
from bench.search import BASE_US, _queries, build, db_path, stored_events

TARGET_SECONDS = 0.3
DAY_US = 86_400 * 1_000_000


def _rfc(us: int) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _get(url: str, query_times: list[float] | None = None) -> float:
    """Seconds to the reply's last byte; for the JSON API also the engine's own time (query_ms)."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")
    elapsed = time.perf_counter() - started
    if query_times is not None:
        query_times.append(json.loads(body)["query_ms"] / 1000)
    return elapsed


def _percentiles(timings: list[float]) -> tuple[float, float]:
    timings = sorted(timings)
    return statistics.median(timings), timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]


def run(ctx: BenchContext) -> list[Row]:
    from tests.harness import Cluster, free_port

    events = int(ctx.results.get("search_events") or 10_000_000)
    path = db_path(events)
    rows: list[Row] = []
    built, held = stored_events(path)
    if not (built == events and held <= events * 1.05):
        seconds = build(path, events)
        rows.append(Row(f"web: search store built ({events:,} events)", f"{seconds:.0f} s"))
    with open(path, "rb") as handle:   # warm page cache, as bench/search.py does
        while handle.read(16 << 20):
            pass
    cluster = Cluster(ctx.work / "web")
    (ctx.work / "web").mkdir(parents=True, exist_ok=True)
    port = free_port()
    cluster.collector("bench-collector", data_dir=str(path.parent), web={"listen": f"127.0.0.1:{port}"})
    base = f"http://127.0.0.1:{port}"
    try:
        # Not the regex queries: one that matches nothing reads all 10M messages (the search
        # section's full-scan figure, 8-60 s each on a shared machine) whatever the front end.
        queries = {"no filter (newest first)": [{}] * 20,
                   **{k: v for k, v in _queries(events).items() if k != "regex"}}
        for figure, filter_list in queries.items():
            for label, route in (("API first page", "/api/v1/events"), ("events page", "/events")):
                urls = [f"{base}{route}?{urllib.parse.urlencode(f)}" for f in filter_list]
                _get(urls[0])   # warm the query plan
                engine: list[float] | None = [] if route.startswith("/api/") else None
                p50, p95 = _percentiles([_get(url, engine) for url in urls])
                measured = f"{p50 * 1000:.0f} ms / {p95 * 1000:.0f} ms"
                if engine:
                    q50, q95 = _percentiles(engine)
                    measured += f" (query {q50 * 1000:.0f} / {q95 * 1000:.0f} ms)"
                rows.append(Row(f"web {label}, {figure}: p50 / p95", measured,
                                f"< {TARGET_SECONDS * 1000:.0f} ms", p95 < TARGET_SECONDS))
        # Keyset paging: 20 pages deep, each page costs what the first costs (never OFFSET).
        for label, filters in (("no filter", {}), ("user", _queries(events)["user, all time"][0])):
            url, timings = f"{base}/api/v1/events?{urllib.parse.urlencode(filters)}", []
            for _ in range(20):
                started = time.perf_counter()
                with urllib.request.urlopen(url, timeout=120) as response:
                    page = json.loads(response.read())
                timings.append(time.perf_counter() - started)
                if not page.get("next_url"):
                    break
                url = base + page["next_url"]
            p50, p95 = _percentiles(timings)
            rows.append(Row(f"web API pages 1-{len(timings)} via _next, {label}: p50 / p95",
                            f"{p50 * 1000:.0f} ms / {p95 * 1000:.0f} ms", f"< {TARGET_SECONDS * 1000:.0f} ms",
                            p95 < TARGET_SECONDS))
        # The chart over one day of the store (~333,000 events) and over 1 h ranges.
        days = [{"since": _rfc(BASE_US + d * DAY_US), "until": _rfc(BASE_US + (d + 1) * DAY_US)}
                for d in range(0, 30, 3)]
        for label, filter_list in (("1 day", days), ("1 h", _queries(events)["time range (1 h)"][:10])):
            p50, p95 = _percentiles([_get(f"{base}/api/v1/histogram?{urllib.parse.urlencode(f)}")
                                     for f in filter_list])
            rows.append(Row(f"web chart counts, {label} range: p50 / p95",
                            f"{p50 * 1000:.0f} ms / {p95 * 1000:.0f} ms", "none"))
    finally:
        cluster.stop_all()
    ctx.results["web"] = {r.figure: r.measured for r in rows}
    return rows
