"""Sources inside the real agent, shipping to a real collector: rotation with a restart in the
middle, per-source filters, source metrics; counts read back with `fleetlog search`."""

from __future__ import annotations

import collections
import json
import os
import shutil
import threading
import time

from tests.harness import search_json, wait_for, write_lines


class NumberedWriter(threading.Thread):
    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.lock = threading.Lock()
        self.count = 0
        self.reopen = threading.Event()
        self.halt = threading.Event()

    def run(self):
        handle = open(self.path, "a")  # noqa: SIM115 — held open across writes, like a daemon
        while not self.halt.is_set():
            with self.lock:
                if self.reopen.is_set():
                    handle.close()
                    handle = open(self.path, "a")  # noqa: SIM115
                    self.reopen.clear()
                handle.write(f"2025-12-02T14:30:45Z INFO rotation test seq={self.count:06d}\n")
                handle.flush()
                self.count += 1
            if self.count % 10 == 0:
                time.sleep(0.003)
        handle.close()


def test_rotations_and_an_agent_restart_store_every_line_once(cluster, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    writer = NumberedWriter(log)
    writer.start()
    collector = cluster.collector()
    source = {"type": "file", "paths": [str(logs / "app.log*")], "exclude": ["*.gz"]}
    agent = cluster.agent("web-1", [collector], [source])

    def rename_create(k):
        os.rename(log, logs / f"app.log.{k}")
        time.sleep(0.01)           # the writer still writes to the renamed file for a moment
        writer.reopen.set()

    def copytruncate(k):
        with writer.lock:
            shutil.copyfile(log, logs / f"app.log.{k}")
            os.truncate(log, 0)

    k = 0
    for rotate in [rename_create, copytruncate] * 2:
        k += 1
        time.sleep(0.4)             # pacing the workload; correctness does not depend on it
        rotate(k)
    agent.stop()                    # down while the writer goes on and the files rotate again
    for rotate in [copytruncate, rename_create] * 3:
        k += 1
        time.sleep(0.1)
        rotate(k)
    agent.start()
    for rotate in [rename_create, copytruncate] * 2:
        k += 1
        time.sleep(0.4)
        rotate(k)
    writer.halt.set()
    writer.join(10)
    total = writer.count
    wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total", {"host": "web-1"}) >= total,
             60, f"{total} events stored")
    time.sleep(0.5)
    events = search_json(collector, "--host", "web-1", "--message", "rotation test")
    seqs = collections.Counter(e["message"].rsplit("seq=", 1)[1] for e in events)
    assert len(events) == total
    assert set(seqs) == {f"{i:06d}" for i in range(total)}
    assert max(seqs.values()) == 1
    assert agent.process.poll() is None


def test_source_filters_and_metrics(cluster, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [json.dumps({"level": level, "user": user, "action": action, "msg": f"{level} {user} {action}"})
             for level in ("debug", "info", "warning", "error")
             for user in ("admin-1", "bob")
             for action in ("debug.dump", "user.update")]
    write_lines(logs / "app.log", lines)
    write_lines(logs / "old.log.gz", ["never read"])
    collector = cluster.collector()
    source = {"type": "file", "paths": [str(logs / "*")], "parser": "json", "min_level": "warning",
              "include": [{"field": "user", "pattern": "admin*"}],
              "exclude": ["*.gz", {"field": "action", "pattern": "debug*"}]}
    agent = cluster.agent("web-1", [collector], [source])
    label = {"source": f"file:{logs / 'app.log'}"}
    wait_for(lambda: agent.metric("fleetlog_agent_events_read_total", label) == 16, 30, "16 lines read")
    wait_for(lambda: agent.metric("fleetlog_agent_events_acked_total") == 2, 30, "2 events acknowledged")
    events = search_json(collector, "--host", "web-1", "--log-type", "application")
    assert sorted(e["message"] for e in events) == ["error admin-1 user.update", "warning admin-1 user.update"]
    assert {e["user"] for e in events} == {"admin-1"} and {e["action"] for e in events} == {"user.update"}
    assert agent.metric("fleetlog_agent_events_dropped_total", {"reason": "filtered"}) == 14
    wait_for(lambda: agent.metric("fleetlog_agent_source_lag_bytes", label) == 0
             and "fleetlog_agent_source_lag_bytes{" in agent.metrics(), 10, "lag 0 after the checkpoint")
    assert agent.metric("fleetlog_agent_events_read_total", {"source": f"file:{logs / 'old.log.gz'}"}) == 0
    write_lines(logs / "app.log", [json.dumps({"level": "error", "user": "admin-2", "msg": "late"})])
    wait_for(lambda: agent.metric("fleetlog_agent_events_acked_total") == 3, 30, "the late line")
