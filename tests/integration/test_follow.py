"""`fleetlog search --follow`: new matches arrive live, and the follower resumes after a collector
restart without missing or repeating an event."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading

from tests.harness import ROOT, env, run_cli, wait_for


def test_follow_streams_new_matches_and_survives_a_restart(cluster):
    collector = cluster.collector()
    run_cli("--collector", collector.address, "note", "before the follower started")
    follower = subprocess.Popen(
        [sys.executable, "-m", "fleetlog.cli.main", "--collector", collector.address, "search", "--follow",
         "--format", "json", "--action", "Admin.EventLog.Note"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()
    received: list[dict] = []

    def got(count: int) -> bool:
        while not lines.empty():
            received.append(json.loads(lines.get()))
        return len(received) >= count

    try:
        # The follower is connected once its own audit event is stored.
        wait_for(lambda: any(e["fields"].get("purpose") == "follow" for e in _events(collector, "audit/search")),
                 20, "follower connected")
        assert run_cli("--collector", collector.address, "note", "first").returncode == 0
        wait_for(lambda: got(1), 20, "first note followed")

        assert collector.stop() == 0
        assert run_cli("--collector", collector.address, "note", "lost?").returncode == 1  # it is down
        collector.start().wait_ready()
        assert run_cli("--collector", collector.address, "note", "during reconnect").returncode == 0
        assert run_cli("--collector", collector.address, "note", "after").returncode == 0
        wait_for(lambda: got(3), 30, "notes after the restart followed")
        assert [e["message"] for e in received] == ["first", "during reconnect", "after"]
        assert received[0]["action"] == "Admin.EventLog.Note" and received[0]["user"] == "anonymous"
        assert len({e["seq"] for e in received}) == 3
    finally:
        follower.terminate()
        follower.wait(10)
    assert "reconnecting" in follower.stderr.read()
    assert follower.poll() is not None


def _events(collector, action: str) -> list[dict]:
    result = run_cli("--collector", collector.address, "search", "--format", "json", "--limit", "0",
                     "--action", action)
    return [json.loads(line) for line in result.stdout.splitlines()]
