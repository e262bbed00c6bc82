"""Operations (contract §6): systemd notification and watchdog, --check-config, SIGHUP reload of the
agent's sources while lines are written, graceful SIGTERM, the daemons' own logging."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from tests.harness import ROOT, env, search_json, wait_for, write_lines, write_toml


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def poll(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("kind", ["collector", "agent"])
def test_ready_watchdog_and_stopping_reach_the_notify_socket(cluster, tmp_path, kind):
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        systemd_env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"}   # keep-alive every 0.1 s
        if kind == "collector":
            daemon = cluster.collector(start=False)
        else:
            collector = cluster.collector()
            log = tmp_path / "app.log"
            log.write_text("")
            daemon = cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(log)]}], start=False)
        daemon.start(extra_env=systemd_env)
        wait_for(lambda: "READY=1" in notify.poll(), 30, f"{kind} READY=1")
        wait_for(lambda: notify.poll().count("WATCHDOG=1") >= 3, 30, f"{kind} keep-alives")
        assert notify.messages.index("READY=1") < notify.messages.index("WATCHDOG=1")
        assert daemon.stop() == 0
        assert notify.poll()[-1] == "STOPPING=1"
        assert notify.messages.count("READY=1") == 1
    finally:
        notify.close()


def _check_config(kind: str, path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"fleetlog.{kind}", "--config", str(path), "--check-config"],
                          capture_output=True, text=True, env=env(), cwd=ROOT, timeout=60, check=False)


def test_check_config_prints_the_effective_config_or_names_file_and_key(tmp_path):
    agent = write_toml(tmp_path / "agent.toml", {
        "node_name": "web-1", "state_dir": str(tmp_path / "state"),
        "sources": [{"type": "file", "paths": [str(tmp_path / "*.log")]}]})
    result = _check_config("agent", agent)
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["node_name"] == "web-1"
    assert effective["batch"]["max_wait"] == "200ms"        # defaults filled in, in config syntax
    assert effective["spool"]["when_full"] == "block"

    collector = write_toml(tmp_path / "collector.toml", {"listen": "127.0.0.1:7999", "data_dir": str(tmp_path / "d"),
                                                         "storage": {"synchronus": "full"}})
    result = _check_config("collector", collector)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "collector.toml" in result.stderr and "synchronus" in result.stderr
    assert "Traceback" not in result.stderr

    agent.write_text('node_name = "web-1"\n[batch]\nmax_wait = "soon"\n')
    result = _check_config("agent", agent)
    assert result.returncode == 2
    assert "agent.toml" in result.stderr and "max_wait" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


class Writer(threading.Thread):
    """Appends numbered lines to a file as fast as it can until told to stop."""

    def __init__(self, path, prefix):
        super().__init__(daemon=True)
        self.path, self.prefix = path, prefix
        self.count = 0
        self.halt = threading.Event()

    def run(self):
        with open(self.path, "a") as handle:
            while not self.halt.is_set():
                handle.write(f"2025-12-02T14:30:45Z INFO {self.prefix} line={self.count:06d}\n")
                handle.flush()
                self.count += 1
                if self.count % 20 == 0:
                    self.halt.wait(0.002)


def test_sighup_changes_sources_and_filters_while_lines_are_written(cluster, tmp_path):
    collector = cluster.collector()
    app, other = tmp_path / "app.log", tmp_path / "other.log"
    app.write_text("")
    write_lines(other, [f"2025-12-02T14:30:45Z {level} other line={n}" for n, level in
                        enumerate(["INFO", "ERROR", "DEBUG", "WARNING", "INFO"])])
    agent = cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(app)]}])
    writer = Writer(app, "app")
    writer.start()
    try:
        wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total") > 200, 30, "first lines")
        # 1: add a second source with a level filter; 2: change the first source's parser
        # settings; 3: back to the first source alone. Each swap happens mid-stream.
        sources = [
            [{"type": "file", "paths": [str(app)]},
             {"type": "file", "paths": [str(other)], "min_level": "warning", "log_type": "other"}],
            [{"type": "file", "paths": [str(app)], "parser": "plain"},
             {"type": "file", "paths": [str(other)], "min_level": "warning", "log_type": "other"}],
            [{"type": "file", "paths": [str(app)], "parser": "plain"}],
        ]
        for n, new_sources in enumerate(sources, 1):
            before = collector.metric("fleetlog_collector_events_stored_total")
            cluster.rewrite(agent, sources=new_sources)
            agent.process.send_signal(signal.SIGHUP)
            wait_for(lambda n=n: agent.log().count("reload: ") >= n, 30, f"reload {n} applied")
            wait_for(lambda b=before: collector.metric("fleetlog_collector_events_stored_total") > b + 100, 30,
                     f"lines flowing after reload {n}")
    finally:
        writer.halt.set()
        writer.join()
    source = f"file:{app}"
    wait_for(lambda: len(search_json(collector, "--source", source)) >= writer.count, 60, "every app line")
    stored = [int(e["message"].rsplit("=", 1)[1]) for e in search_json(collector, "--source", source)]
    assert sorted(stored) == list(range(writer.count))          # each exactly once
    others = search_json(collector, "--log-type", "other")
    assert sorted((e["message"], e["level"]) for e in others) == [("other line=1", "error"),
                                                                  ("other line=3", "warning")]
    assert agent.process.poll() is None
    assert "Traceback" not in agent.log()


def test_a_bad_reload_keeps_the_running_configuration(cluster, tmp_path):
    collector = cluster.collector()
    app = tmp_path / "app.log"
    write_lines(app, ["2025-12-02T14:30:45Z INFO before"])
    agent = cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(app)]}])
    wait_for(lambda: search_json(collector, "--host", "web-1", "--message", "before"), 30, "first line")
    agent.config_path.write_text(agent.config_path.read_text() + "\nunknown_key = 1\n")
    agent.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in agent.log(), 30, "refusal logged")
    assert "unknown_key" in agent.log()
    write_lines(app, ["2025-12-02T14:30:46Z INFO after"])
    wait_for(lambda: search_json(collector, "--host", "web-1", "--message", "after"), 30, "the running agent goes on")
    assert agent.process.poll() is None


def test_own_logging_json_to_a_file_at_the_configured_level(cluster, tmp_path):
    log_file = tmp_path / "collector-own.log"
    collector = cluster.collector(log_file=str(log_file), log_format="json", log_level="debug")
    collector.stop()
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["level"] == "info" and "listening on" in r["message"] for r in records)
    assert any(r["level"] == "debug" for r in records)
    assert all(r["time"].endswith("Z") and len(r["time"]) == 24 for r in records)   # UTC, ms

    quiet_file = tmp_path / "collector-quiet.log"
    quiet = cluster.collector("collector-2", log_file=str(quiet_file), log_level="warning")
    quiet.stop()
    assert "listening on" not in quiet_file.read_text()       # info is below warning
    assert os.path.exists(quiet_file)
