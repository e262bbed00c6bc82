"""Faults of the agent's machine (issue 20), made to really happen: its state_dir is a small
tmpfs that fills up; a log file it should read is unreadable (the agent runs as root without
CAP_DAC_OVERRIDE, so permissions apply to it); the log directory disappears and comes back.
Every test counts the events end to end: zero lost, zero duplicated, nothing read twice."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request

from tests.faults.support import assert_exactly_once, numbered, stored_count, wait_stored
from tests.faults.tmpfs import fill, tmpfs
from tests.harness import metric_value, wait_for, write_lines

HOST = "web-1"
# Root, but without the capabilities that bypass file permissions.
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                "--inh-caps=-dac_override,-dac_read_search"]


def _readyz(daemon) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/readyz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _lines_with(daemon, words: str) -> list[str]:
    return [line for line in daemon.log().splitlines() if words in line]


def _read_total(agent) -> float:
    return metric_value(agent.metrics(), "fleetlog_agent_events_read_total")


def test_the_agents_state_disk_fills_reading_pauses_and_resumes_without_loss_or_rereading(cluster, tmp_path):
    logs, state = tmp_path / "logs", tmp_path / "agent-state"
    logs.mkdir()
    with tmpfs(state, "4m"):
        try:
            collector = cluster.collector()
            agent = cluster.agent(HOST, [collector], [{"type": "file", "paths": [str(logs / "*.log")]}],
                                  state_dir=str(state))
            write_lines(logs / "app.log", numbered(0, 2_000))
            wait_stored(collector, HOST, 2_000)

            filler = fill(state)
            write_lines(logs / "app.log", numbered(2_000, 5_000))
            status = wait_for(lambda: (s := _readyz(agent))[0] == 503 and s, 30, "agent /readyz: reading paused")
            assert "reading paused: cannot write the spool" in status[1] and "No space left" in status[1], status
            write_lines(logs / "app.log", numbered(7_000, 3_000))
            # Paused: what was read is at most a batch or two beyond the full disk, and stays so.
            read = _read_total(agent)
            assert read < 10_000
            assert stored_count(collector, HOST) < 10_000
            assert len(_lines_with(agent, "spool: cannot write")) == 1, _lines_with(agent, "spool: cannot write")

            filler.unlink()
            wait_stored(collector, HOST, 10_000)
            wait_for(lambda: _readyz(agent)[0] == 200, 30, "agent ready again")
            assert _read_total(agent) == 10_000          # every line read once, none twice
            assert_exactly_once(collector, HOST, range(10_000))
            assert len(_lines_with(agent, "spool: writable again")) == 1
            assert "Traceback" not in agent.log()
        finally:
            cluster.stop_all()


def test_an_unreadable_log_file_is_reported_once_and_read_in_full_once_readable(cluster, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    collector = cluster.collector()
    agent = cluster.agent(HOST, [collector], [{"type": "file", "paths": [str(logs / "*.log")]}], start=False)
    agent.prefix = UNPRIVILEGED
    agent.start()
    write_lines(logs / "a.log", numbered(0, 1_000))
    secret = logs / "b.log"
    write_lines(secret, numbered(1_000, 1_000))
    os.chmod(secret, 0o000)
    wait_stored(collector, HOST, 1_000)
    wait_for(lambda: _lines_with(agent, f"cannot open {secret}: Permission denied"), 30, "the refusal logged")
    write_lines(logs / "a.log", numbered(2_000, 500))          # the readable file goes on
    wait_stored(collector, HOST, 1_500)
    assert stored_count(collector, HOST) == 1_500
    assert len(_lines_with(agent, f"cannot open {secret}")) == 1   # once, not once per scan

    os.chmod(secret, 0o644)
    wait_stored(collector, HOST, 2_500)
    assert_exactly_once(collector, HOST, range(2_500))
    assert "Traceback" not in agent.log()


def test_the_log_directory_disappears_and_comes_back(cluster, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    collector = cluster.collector()
    agent = cluster.agent(HOST, [collector], [{"type": "file", "paths": [str(logs / "*.log")]}])
    write_lines(logs / "app.log", numbered(0, 1_000))
    wait_stored(collector, HOST, 1_000)
    shutil.rmtree(logs)
    wait_for(lambda: "Traceback" not in agent.log() and _readyz(agent)[0] == 200, 10, "agent still running")
    logs.mkdir()
    write_lines(logs / "app.log", numbered(1_000, 1_000))     # a new file where the old one was
    write_lines(logs / "other.log", numbered(2_000, 500))
    wait_stored(collector, HOST, 2_500)
    assert_exactly_once(collector, HOST, range(2_500))
    assert _read_total(agent) == 2_500
    assert "Traceback" not in agent.log()
