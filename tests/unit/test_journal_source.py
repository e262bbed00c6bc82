"""JournaldSource against real journal files made by systemd-journal-remote, followed by a real
journalctl while the test appends to them."""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time
from typing import Any, Self

import pytest

import fleetlog.agent.sources.journald as journald_module
from fleetlog.agent.sources.base import SourceBatch
from fleetlog.agent.sources.journald import JournaldSource, JournaldSourceConfig, entry_to_record
from tests.journal_files import JournalFile, entry


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch):
    monkeypatch.setattr(journald_module, "RESTART_DELAYS", (0.1, 0.2))


class JournalDriver:
    def __init__(self, config: JournaldSourceConfig, state_dir: pathlib.Path):
        self.source = JournaldSource(config, state_dir)
        self.batches: list[SourceBatch] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[Any] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _emit(self, batch: SourceBatch) -> None:
        with self.lock:
            self.batches.append(batch)
        self.source.commit(batch.checkpoint)

    def _run(self) -> None:
        self.task = self.loop.create_task(self.source.run(self._emit))
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass

    def records(self) -> list[tuple[str, Any]]:
        with self.lock:
            return [(b.source, r) for b in self.batches for r in b.records]

    def messages(self) -> list[str]:
        return [r.parsed.message for _, r in self.records()]

    def wait_count(self, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.records()) < n:
            assert time.monotonic() < deadline, f"timed out waiting for {n} entries, have {len(self.records())}"
            time.sleep(0.02)

    def wait_following(self, timeout: float = 20) -> None:
        """Until journalctl watches the journal for new entries (an inotify descriptor: it opens
        one once it has read to the end and starts waiting), so what is appended next is new."""
        deadline = time.monotonic() + timeout
        while True:
            process = self.source._process
            if process is not None:
                try:
                    fds = pathlib.Path(f"/proc/{process.pid}/fd")
                    if any(os.readlink(fd) == "anon_inode:inotify" for fd in fds.iterdir()):
                        return
                except OSError:
                    pass    # between journalctl restarts
            assert time.monotonic() < deadline, "timed out waiting for journalctl to follow"
            time.sleep(0.02)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(lambda: self.task and self.task.cancel())
        self.thread.join(10)
        self.loop.close()


def config(journal_dir: pathlib.Path, **overrides: Any) -> JournaldSourceConfig:
    return JournaldSourceConfig(type="journald", journal_dir=str(journal_dir), name="journal", **overrides)


def test_fields_are_mapped_including_binary_messages(tmp_path):
    journal = JournalFile(tmp_path / "j" / "system.journal")
    journal.path.parent.mkdir()
    journal.append([
        entry("Accepted publickey for bob", unit="sshd.service", priority=5, identifier="sshd", pid=77,
              REQUEST_ID="req-1", USER_NAME="bob", ACTION="login", PEER="10.0.0.9"),
        entry(b"raw \xff\xfe bytes", priority=3),               # binary MESSAGE, not UTF-8
        entry("caf\u00e9 binary but valid".encode(), priority=6),  # binary form, valid UTF-8
        {"PRIORITY": 2, "MESSAGE": "kernel says hi", "_TRANSPORT": "kernel", "SYSLOG_IDENTIFIER": "kernel"},
    ])
    with JournalDriver(config(journal.path.parent), tmp_path / "state") as driver:
        driver.wait_count(4)
        records = driver.records()
    (src0, r0), (_src1, r1), (_src2, r2), (src3, r3) = records
    assert src0 == "journald:sshd.service" and r0.app == "sshd" and r0.pid == 77
    assert r0.parsed.level == 5 and r0.parsed.time_us == 1_764_685_845_000_000
    assert r0.parsed.message == "Accepted publickey for bob"
    assert (r0.parsed.request_id, r0.parsed.user, r0.parsed.action) == ("req-1", "bob", "login")
    assert r0.parsed.fields == {"peer": "10.0.0.9"}
    assert r1.parsed.message == "raw \ufffd\ufffd bytes" and r1.parsed.fields == {"invalid_utf8": True}
    assert r1.parsed.level == 3 and r1.parsed.time_us == 1_764_685_845_001_000
    assert r2.parsed.message == "caf\u00e9 binary but valid" and r2.parsed.fields is None
    assert src3 == "journald:kernel" and r3.parsed.level == 2
    positions = [r.position for _, r in records]
    assert positions == sorted(positions) and len(set(positions)) == 4


def test_follows_appends_and_resumes_after_restart_from_the_cursor(tmp_path):
    journal = JournalFile(tmp_path / "j" / "remote.journal")
    journal.path.parent.mkdir()
    journal.append([entry(f"first {i}") for i in range(50)])
    cfg = config(journal.path)          # journal_dir may name a file as well
    with JournalDriver(cfg, tmp_path / "state") as driver:
        driver.wait_count(50)
        journal.append([entry(f"second {i}") for i in range(30)])   # while journalctl follows
        driver.wait_count(80)
        first_ids = {(b.source_key, r.position) for b in driver.batches for r in b.records}
        assert driver.messages() == [f"first {i}" for i in range(50)] + [f"second {i}" for i in range(30)]
    journal.append([entry(f"third {i}") for i in range(20)])
    with JournalDriver(cfg, tmp_path / "state") as driver:
        driver.wait_count(20)
        time.sleep(0.5)
        assert driver.messages() == [f"third {i}" for i in range(20)]
        assert not first_ids & {(b.source_key, r.position) for b in driver.batches for r in b.records}
    assert len({b.source_key for b in driver.batches}) == 1


def test_units_filter_and_start_at_end(tmp_path):
    journal = JournalFile(tmp_path / "j" / "system.journal")
    journal.path.parent.mkdir()
    journal.append([entry("old sshd", unit="sshd.service"), entry("old cron", unit="cron.service")])
    cfg = config(journal.path.parent, units=["sshd.service"], start_at="end")
    with JournalDriver(cfg, tmp_path / "state") as driver:
        driver.wait_following()   # journalctl has read to the end and waits for more
        journal.append([entry("new sshd", unit="sshd.service"), entry("new cron", unit="cron.service"),
                        entry("new sshd 2", unit="sshd.service")])
        driver.wait_count(2)
        time.sleep(0.3)
        assert driver.messages() == ["new sshd", "new sshd 2"]


def test_missing_journal_is_retried_until_it_appears(tmp_path):
    folder = tmp_path / "later"
    with JournalDriver(config(folder / "system.journal"), tmp_path / "state") as driver:
        time.sleep(0.5)                 # journalctl fails ("No such file"); the source retries
        folder.mkdir()
        JournalFile(folder / "system.journal").append([entry("finally")])
        driver.wait_count(1)
        assert driver.messages() == ["finally"]


def test_entry_without_cursor_or_with_null_message_is_survived():
    assert entry_to_record({"MESSAGE": "x"}) is None
    label, key, record = entry_to_record({"__CURSOR": "s=abc;i=1f;b=x", "MESSAGE": None, "PRIORITY": "junk"})
    assert (label, key, record.position, record.parsed.message, record.parsed.level) == (
        "journald:journal", "journald:abc", 31, "", None)
