"""Bytes on disk per event (contract §5: <= 0.3x the raw log), and the before/after of issue 30.

Two workloads, each of `--lines` events: the bench workload (bench/common.write_workload, one
file of ~106-byte authentication lines) and the mixed corpus (bench/corpus.py: three nodes'
syslog, auth, nginx, app and PostgreSQL files).

- Through the real path: the files are written, one agent per node ships them to one collector
  (as the e2e section runs them), the collector is stopped (its store closes and checkpoints its
  WAL) and the size of its whole data_dir is divided by the events it stored. The raw log is the
  bytes of the files the agents read.
- Before/after, in this process, on the same events: the lines parsed as the agent parses them,
  in chunks of 5,000 of one source, one transaction each, into the row model as it stood before
  issue 30 (bench/row_model.py) and into the current store (SqliteStore.store_batch). Bytes per
  event of each file set after close, and CPU per event (this process's CPU time, all threads,
  over the stores' calls only: the lines are parsed outside the clocks).

    python bench/run.py --only storage [--lines N]
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from collections.abc import Callable, Iterator

from bench.common import BenchContext, Row, write_workload
from bench.corpus import CorpusFile, write_corpus
from bench.row_model import RowModelStore, insert_path
from fleetlog.agent.parse import DEFAULT_LEVEL, parse_auto
from fleetlog.collector.store import IncomingEvents
from fleetlog.collector.store.sqlite import SqliteStore
from tests.harness import Cluster, wait_for

TARGET_RATIO = 0.3
CHUNK = 5000
BENCH_HOST = "bench-agent"


def _tree_bytes(folder: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _through_collector(tmp: pathlib.Path, files: list[CorpusFile]) -> tuple[int, int]:
    """Ship `files` (one agent per host) into one collector; (events stored, data_dir bytes after
    the collector stopped)."""
    total = sum(f.lines for f in files)
    cluster = Cluster(tmp)
    try:
        collector = cluster.collector("bench-collector", storage={"synchronous": "full"})
        for host in sorted({f.host for f in files}):
            sources = [{"type": "file", "paths": [str(f.path)], "app": f.app, "log_type": f.log_type}
                       for f in files if f.host == host]
            cluster.agent(host, [collector], sources, batch={"max_wait": "100ms", "max_events": 5000})
        wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total") >= total,
                 timeout=1800, what=f"{total} events stored", interval=0.2)
        stored = int(collector.metric("fleetlog_collector_events_stored_total"))
    finally:
        cluster.stop_all()
    return stored, _tree_bytes(tmp / "bench-collector" / "data")


def _incoming(files: list[CorpusFile]) -> Iterator[IncomingEvents]:
    """The files' lines as the collector receives them: parsed by the agent's parser, 5,000 of
    one source at a time (positions are byte offsets, as the file source sends them)."""
    for f in files:
        pos = 0
        with open(f.path, encoding="utf-8") as handle:
            while True:
                lines = [line for _, line in zip(range(CHUNK), handle)]
                if not lines:
                    break
                positions, times, levels, messages, request_ids, users, actions, fields = [], [], [], [], [], [], [], []
                read_time = time.time_ns() // 1000
                for line in lines:
                    parsed = parse_auto(line.rstrip("\n"))
                    positions.append(pos)
                    pos += len(line.encode())
                    # A line without a time the parser knows (nginx's access log) gets the time it
                    # was read, as the agent gives it.
                    times.append(parsed.time_us if parsed.time_us is not None else read_time)
                    levels.append(parsed.level if parsed.level is not None else DEFAULT_LEVEL)
                    messages.append(parsed.message)
                    request_ids.append(parsed.request_id)
                    users.append(parsed.user)
                    actions.append(parsed.action)
                    fields.append(json.dumps(parsed.fields, separators=(",", ":")) if parsed.fields else "")
                count = len(lines)
                yield IncomingEvents(
                    host=f.host, host_ip="127.0.0.1", source_key=f"file:{f.path}", source=f"file:{f.path}",
                    namespace="default", log_type=f.log_type, position=positions, time_us=times,
                    level=bytes(levels), message=messages, request_id=request_ids, user=users, action=actions,
                    app=[f.app] * count, pid=[0] * count, fields_json=fields, flags=bytes(count),
                    tier=["general"] * count)


def _before_after(tmp: pathlib.Path, files: list[CorpusFile]) -> dict[str, tuple[float, float]]:
    """{"row model" | "current store": (bytes per event, CPU µs per event)} on the same events:
    each chunk goes to one store, then the other (so the parsing is done once and held by neither
    clock)."""
    tmp.mkdir(parents=True, exist_ok=True)
    row_path, store_path = tmp / "row-model.db", tmp / "current" / "events.db"
    received = 1_800_000_000_000_000
    cpu = {"row model": 0.0, "current store": 0.0}
    events = 0

    def timed(name: str, call: Callable[..., object], *args: object) -> None:
        started = time.process_time()
        call(*args)
        cpu[name] += time.process_time() - started

    rows = RowModelStore(str(row_path))
    store = SqliteStore(str(store_path), "full", collector="bench-collector")
    for chunk in _incoming(files):
        events += len(chunk)
        timed("row model", rows.store_batch, [chunk], received)
        timed("current store", store.store_batch, [chunk], received)
    timed("row model", rows.close)
    timed("current store", store.close)
    sizes = {"row model": sum(os.path.getsize(p) for p in tmp.glob("row-model.db*")),
             "current store": _tree_bytes(store_path.parent)}
    return {name: (sizes[name] / events, cpu[name] * 1e6 / events) for name in cpu}


def _bench_files(folder: pathlib.Path, lines: int) -> list[CorpusFile]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "input.log"
    write_workload(path, lines)
    return [CorpusFile(BENCH_HOST, path, "", "application", lines)]


def _ratio_row(label: str, per_event: float, raw_per_event: float) -> Row:
    ratio = per_event / raw_per_event
    return Row(label, f"{per_event:.0f} B ({ratio:.2f}x the raw log's {raw_per_event:.0f} B a line)",
               f"<= {TARGET_RATIO}x the raw log", ratio <= TARGET_RATIO)


def run(ctx: BenchContext) -> list[Row]:
    rows: list[Row] = []
    workloads = {"bench workload": lambda folder: _bench_files(folder, ctx.lines),
                 "mixed corpus": lambda folder: write_corpus(folder, ctx.lines)}
    for name, make in workloads.items():
        folder = ctx.work / "storage" / name.replace(" ", "-")
        files = make(folder / "input")
        raw = sum(f.path.stat().st_size for f in files) / sum(f.lines for f in files)
        print(f"   {name}: {ctx.lines:,} lines in {len(files)} file(s), {raw:.0f} B a line; "
              "agent -> collector", flush=True)
        stored, size = _through_collector(folder / "e2e", files)
        rows.append(_ratio_row(f"storage, {name}: bytes on disk per event (agent -> collector)",
                               size / stored, raw))
        print(f"   {name}: the row model and the current store, in this process", flush=True)
        compared = _before_after(folder / "stores", files)
        (before, before_cpu), (after, after_cpu) = compared["row model"], compared["current store"]
        rows.append(Row(f"storage, {name}: bytes per event, row model ({insert_path()}) -> current store",
                        f"{before:.0f} B ({before / raw:.2f}x) -> {after:.0f} B ({after / raw:.2f}x)",
                        f"<= {TARGET_RATIO}x the raw log", after / raw <= TARGET_RATIO))
        rows.append(Row(f"storage, {name}: CPU per event stored, row model ({insert_path()}) -> current store",
                        f"{before_cpu:.1f} µs -> {after_cpu:.1f} µs"))
    ctx.results["storage"] = {r.figure: r.measured for r in rows}
    return rows
