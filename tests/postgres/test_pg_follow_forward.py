"""Followers and forwarders on a cluster: while two collectors commit at once, `search --follow`
through one of them and a forwarder configured on both see every event exactly once; when the
collector holding the forwarder's lease is killed, the other takes over from the stored cursor
within 15 s."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

from tests.harness import ROOT, Cluster, env, search_json, wait_for, write_lines

LINES = 3000


def _pg(dsn: str) -> dict:
    return {"storage": {"backend": "postgresql", "dsn": dsn}}


def _forwarder(path) -> dict:
    return {"forwarders": [{"name": "archive", "type": "file", "path": str(path)}]}


def _delivered(*paths) -> list[tuple[str, str]]:
    """(host, message) of every web event the forwarder wrote, in all files, repeats kept."""
    out = []
    for path in paths:
        if path.exists():
            for line in path.read_text().splitlines():
                event = json.loads(line)
                if event["host"].startswith("web-"):
                    out.append((event["host"], event["message"]))
    return out


def _expected() -> list[tuple[str, str]]:
    return sorted((f"web-{n}", f"line {i:05d}") for n in (1, 2) for i in range(LINES))


def test_follower_and_forwarder_see_each_event_once_while_two_collectors_commit(tmp_path, pg_dsn):
    cluster = Cluster(tmp_path)
    outputs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    follower = None
    try:
        a = cluster.collector("col-a", **_pg(pg_dsn), **_forwarder(outputs[0]))
        b = cluster.collector("col-b", **_pg(pg_dsn), **_forwarder(outputs[1]))
        follower = subprocess.Popen(
            [sys.executable, "-m", "fleetlog.cli.main", "--collector", a.address, "search", "--follow",
             "--format", "json", "--host", "web-*"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()
        # The follower is connected once its own audit event is stored (it starts at the heads).
        wait_for(lambda: any(e["fields"].get("purpose") == "follow"
                             for e in search_json(a, "--action", "audit/search")), 20, "follower connected")
        logs = []
        for n, collector in ((1, a), (2, b)):
            log = tmp_path / f"web-{n}.log"
            logs.append(log)
            cluster.agent(f"web-{n}", [collector], [{"type": "file", "paths": [str(log)]}],
                          batch={"max_events": 100, "max_wait": "10ms"})
        # Both agents append at once, in small batches: the two collectors' commits interleave.
        for start in range(0, LINES, 300):
            for log in logs:
                write_lines(log, [f"2025-12-01T10:00:00Z info line {i:05d}" for i in range(start, start + 300)])
            time.sleep(0.05)
        followed: list[dict] = []

        def all_followed() -> bool:
            while not lines.empty():
                followed.append(json.loads(lines.get()))
            return len(followed) >= 2 * LINES
        wait_for(all_followed, timeout=120, what=f"{2 * LINES} events followed", interval=0.2)
        wait_for(lambda: len(_delivered(*outputs)) >= 2 * LINES, timeout=120, what="all events forwarded",
                 interval=0.2)
        time.sleep(0.9)   # a repeat would arrive in this quiet period
        all_followed()
        assert sorted((e["host"], e["message"]) for e in followed) == _expected()
        assert {e["collector"] for e in followed} == {"col-a", "col-b"}
        assert sorted(_delivered(*outputs)) == _expected()
    finally:
        if follower is not None:
            follower.terminate()
            follower.wait(10)
        cluster.stop_all()


def test_forwarder_lease_is_taken_over_within_15s_after_kill_9(tmp_path, pg_dsn):
    cluster = Cluster(tmp_path)
    outputs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    try:
        a = cluster.collector("col-a", **_pg(pg_dsn), **_forwarder(outputs[0]))
        wait_for(lambda: outputs[0].exists() and outputs[0].stat().st_size > 0, timeout=30,
                 what="col-a holding the lease and forwarding")
        b = cluster.collector("col-b", **_pg(pg_dsn), **_forwarder(outputs[1]))
        log = tmp_path / "web-1.log"
        cluster.agent("web-1", [a, b], [{"type": "file", "paths": [str(log)]}])
        write_lines(log, [f"2025-12-01T10:00:00Z info line {i:05d}" for i in range(LINES)])
        wait_for(lambda: len(_delivered(outputs[0])) >= LINES, timeout=60, what="col-a forwarding the first lines")
        assert _delivered(outputs[1]) == []       # one holder: col-b stood by
        a.kill()
        killed = time.monotonic()
        write_lines(log, [f"2025-12-01T10:00:00Z info line {i:05d}" for i in range(LINES, 2 * LINES)])
        wait_for(lambda: len(_delivered(outputs[1])) > 0, timeout=15, what="col-b taking the lease over",
                 interval=0.1)
        assert time.monotonic() - killed < 15
        wait_for(lambda: len(set(_delivered(*outputs))) >= 2 * LINES, timeout=60, what="every line forwarded")
        delivered = _delivered(*outputs)
        assert sorted(set(delivered)) == sorted(("web-1", f"line {i:05d}") for i in range(2 * LINES))
        # Nothing col-a had confirmed and saved is sent again: col-b starts from the stored cursor.
        assert len(delivered) - len(set(delivered)) == 0
    finally:
        cluster.stop_all()
