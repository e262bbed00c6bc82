"""The journald source in the real agent: a journal directory made by systemd-journal-remote,
appended to while the agent follows it, filtered by unit and level, across an agent restart."""

from __future__ import annotations

from tests.harness import search_json, wait_for
from tests.journal_files import JournalFile, entry


def test_journal_units_levels_and_restart(cluster, tmp_path):
    journal = JournalFile(tmp_path / "journal" / "system.journal")
    journal.path.parent.mkdir()
    journal.append([entry(f"sshd {i}", unit="sshd.service", priority=5 if i % 2 else 6, identifier="sshd",
                          pid=100 + i) for i in range(10)]
                   + [entry("cron noise", unit="cron.service", priority=3)])
    collector = cluster.collector()
    source = {"type": "journald", "journal_dir": str(journal.path.parent), "units": ["sshd.service"],
              "min_level": "notice", "log_type": "security"}
    agent = cluster.agent("db-1", [collector], [source])
    wait_for(lambda: len(search_json(collector, "--host", "db-1", "--log-type", "security")) == 5, 30,
             "5 notice entries of sshd")
    journal.append([entry(b"binary \xff payload", unit="sshd.service", priority=4, identifier="sshd", pid=7),
                    entry("debug chatter", unit="sshd.service", priority=7)])
    wait_for(lambda: len(search_json(collector, "--host", "db-1", "--log-type", "security")) == 6, 30,
             "the appended warning")
    agent.stop()
    journal.append([entry(f"while down {i}", unit="sshd.service", priority=2) for i in range(3)])
    agent.start()
    wait_for(lambda: len(search_json(collector, "--host", "db-1", "--log-type", "security")) == 9, 30,
             "entries written while the agent was down")
    events = search_json(collector, "--host", "db-1", "--log-type", "security")
    assert [e["message"] for e in events] == (
        [f"sshd {i}" for i in range(1, 10, 2)] + ["binary \ufffd payload"] + [f"while down {i}" for i in range(3)])
    first = events[0]
    assert first["source"] == "journald:sshd.service" and first["app"] == "sshd" and first["pid"] == 101
    assert first["level"] == "notice" and first["time"] == "2025-12-02T14:30:45.001000Z"
    assert events[5]["level"] == "warning" and events[5]["fields"] == {"invalid_utf8": True}
    assert len({e["id"] for e in events}) == 9
    assert agent.metric("fleetlog_agent_events_read_total", {"source": "journald:sshd.service"}) == 3
