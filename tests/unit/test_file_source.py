"""FileSource on real files: discovery, checkpoints and restarts, line handling, multiline."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

import fleetlog.agent.sources.file as file_module
from fleetlog.agent.sources.base import FLAG_TRUNCATED
from tests.unit.file_source_helpers import Driver, assert_each_once, file_config


@pytest.fixture(autouse=True)
def quick_timers(monkeypatch):
    monkeypatch.setattr(file_module, "RESCAN_INTERVAL", 0.1)
    monkeypatch.setattr(file_module, "ROTATE_WAIT", 0.3)


def write(path, lines, mode="a"):
    with open(path, mode) as handle:
        handle.write("".join(line + "\n" for line in lines))


def test_globs_are_rescanned_and_exclude_applies(tmp_path):
    write(tmp_path / "a.log", ["a1", "a2"])
    write(tmp_path / "old.log.gz", ["zipped"])
    config = file_config([str(tmp_path / "*.log*")], exclude=["*.gz"])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(2)
        write(tmp_path / "b.log", ["b1"])          # appears later: found by a rescan
        driver.wait_count(3)
        time.sleep(0.3)
        assert sorted(driver.collected.messages()) == ["a1", "a2", "b1"]
        assert driver.reads == {f"file:{tmp_path}/a.log": 2, f"file:{tmp_path}/b.log": 1}


def test_restart_resumes_exactly(tmp_path):
    log = tmp_path / "app.log"
    write(log, [f"first {i}" for i in range(100)])
    config = file_config([str(log)])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(100)
    write(log, [f"second {i}" for i in range(50)])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(50)
        time.sleep(0.3)
        assert [m for _, _, m in driver.collected.emitted] == [f"second {i}" for i in range(50)]
    saved = json.loads((tmp_path / "state" / "sources" / "test" / "checkpoints.json").read_text())
    assert [entry["offset"] for entry in saved.values()] == [log.stat().st_size]


def test_checkpoint_only_advances_on_commit(tmp_path):
    # The pipeline commits only durable batches: without commits a restart reads everything again,
    # under the same ids (so the collector stores each line once).
    log = tmp_path / "app.log"
    write(log, [f"line {i}" for i in range(10)])
    config = file_config([str(log)])
    with Driver(config, tmp_path / "state", commit=False) as driver:
        driver.wait_count(10)
        first_ids = set(driver.collected.stored)
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(10)
        assert set(driver.collected.stored) == first_ids


def test_start_at_end_only_on_the_first_start(tmp_path):
    log = tmp_path / "app.log"
    write(log, ["old 1", "old 2"])
    with open(log, "a") as handle:
        handle.write("half a li")                   # being written: read whole once completed
    config = file_config([str(tmp_path / "*.log")], start_at="end")
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_tailing()
        with open(log, "a") as handle:
            handle.write("ne\n")
        write(log, ["new 1"])
        driver.wait_count(2)
        time.sleep(0.2)
        assert driver.collected.messages() == ["half a line", "new 1"]
    # Down for a while: a file created meanwhile has no checkpoint but must be read whole.
    write(tmp_path / "later.log", ["later 1", "later 2"])
    write(log, ["new 2"])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(3)
        time.sleep(0.2)
        assert sorted(driver.collected.messages()) == ["later 1", "later 2", "new 2"]


def test_last_line_without_newline_is_held_until_completed(tmp_path):
    log = tmp_path / "app.log"
    config = file_config([str(log)])
    with open(log, "w") as handle:
        handle.write("complete\npart")
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(1)
        time.sleep(0.3)
        assert driver.collected.messages() == ["complete"]
        with open(log, "a") as handle:
            handle.write("ial line\n")
        driver.wait_count(2)
        assert driver.collected.messages() == ["complete", "partial line"]


def test_unterminated_last_line_of_a_rotated_file_is_flushed_when_let_go(tmp_path):
    log = tmp_path / "app.log"
    with open(log, "w") as handle:
        handle.write("one\nunterminated")
    with Driver(file_config([str(log)]), tmp_path / "state") as driver:
        driver.wait_count(1)
        os.rename(log, tmp_path / "app.log.1")
        write(log, ["two"])
        driver.wait_count(3, timeout=10)
        assert sorted(driver.collected.messages()) == ["one", "two", "unterminated"]


def test_max_line_bytes_cuts_and_marks_truncated(tmp_path):
    log = tmp_path / "app.log"
    write(log, ["short", "y" * 100, "after"])
    with Driver(file_config([str(log)], max_line_bytes=32, parser="plain"), tmp_path / "state") as driver:
        driver.wait_count(3)
        records = sorted(driver.collected.records(), key=lambda r: r.position)
        assert [(r.parsed.message, r.flags) for r in records] == [
            ("short", 0), ("y" * 32, FLAG_TRUNCATED), ("after", 0)]
        assert [r.position for r in records] == [0, 6, 107]


def test_ten_megabyte_line_and_binary_junk_are_survived(tmp_path):
    log = tmp_path / "app.log"
    with open(log, "wb") as handle:
        handle.write(b"before\n" + b"z" * (10 * 1024 * 1024) + b"\n")
        handle.write(bytes(range(256)) * 4000 + b"\n")       # binary with embedded newlines
        handle.write(b"\x00\xff\xfe" * 300_000)              # ~900 KB of junk, no newline
        handle.write(b"\nafter\n")
    config = file_config([str(log)], max_line_bytes=64 * 1024)
    with Driver(config, tmp_path / "state") as driver:
        driver.wait(lambda c: c.has("after"), 20, "the line after the junk")
        records = {r.parsed.message[:6]: r for r in driver.collected.records()}
        big = records["z" * 6]
        assert len(big.parsed.message) == 64 * 1024 and big.flags == FLAG_TRUNCATED
        assert records["before"].flags == 0 and records["after"].flags == 0
        for record in driver.collected.records():
            assert len(record.parsed.message) <= 64 * 1024
    # Nothing is pending any more: the checkpoint reached the end of the file.
    saved = json.loads((tmp_path / "state" / "sources" / "test" / "checkpoints.json").read_text())
    assert [entry["offset"] for entry in saved.values()] == [log.stat().st_size]


def test_invalid_utf8_is_kept_with_replacement_and_flagged(tmp_path):
    log = tmp_path / "app.log"
    with open(log, "wb") as handle:
        handle.write("caf\u00e9 ok\n".encode() + b"bad \xff\xfe byte\n" + b'{"msg": "j\xc3", "user": "u"}\n')
    with Driver(file_config([str(log)]), tmp_path / "state") as driver:
        driver.wait_count(3)
        records = sorted(driver.collected.records(), key=lambda r: r.position)
        assert records[0].parsed.message == "caf\u00e9 ok" and records[0].parsed.fields is None
        assert records[1].parsed.message == "bad \ufffd\ufffd byte"
        assert records[1].parsed.fields == {"invalid_utf8": True}
        assert records[2].parsed.user == "u" and records[2].parsed.fields == {"invalid_utf8": True}


def test_multiline_joins_by_start_pattern_and_flushes_after_max_wait(tmp_path):
    log = tmp_path / "app.log"
    config = file_config([str(log)], multiline={"start_pattern": r"^\d{4}-\d{2}-\d{2}", "max_wait": 0.3})
    write(log, ["2025-12-01 10:00:00 ERROR boom", "Traceback:", "  line 1", "2025-12-01 10:00:01 INFO next"])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(1)
        assert driver.collected.messages() == ["boom\nTraceback:\n  line 1"]
        # The second event has no successor: max_wait flushes it.
        driver.wait_count(2, timeout=5)
        assert driver.collected.messages()[1] == "next"
        write(log, ["2025-12-01 10:00:02 WARNING a", "  continued"])
        driver.wait_count(3, timeout=5)
        records = sorted(driver.collected.records(), key=lambda r: r.position)
        assert records[2].parsed.message == "a\n  continued" and records[2].parsed.level == 4


def test_multiline_held_event_is_reread_after_restart(tmp_path):
    log = tmp_path / "app.log"
    config = file_config([str(log)], multiline={"start_pattern": "^START", "max_wait": 10.0})
    write(log, ["START one", "  more", "START two", "  held"])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(1)
        time.sleep(0.3)
        assert driver.collected.messages() == ["START one\n  more"]
    write(log, ["  tail of two", "START three"])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(1)
        assert driver.collected.messages() == ["START two\n  held\n  tail of two"]


def test_two_files_with_the_same_header_are_two_sources(tmp_path):
    header = "# generated by app 1.0"
    write(tmp_path / "a.log", [header, "a 1", "a 2"])
    write(tmp_path / "b.log", [header])                     # only the header so far
    config = file_config([str(tmp_path / "*.log")])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(3)
        write(tmp_path / "b.log", ["b 1", "b 2"])
        driver.wait_count(6)
        time.sleep(0.3)
        assert_each_once_by_file(driver, {"a": [header, "a 1", "a 2"], "b": [header, "b 1", "b 2"]})
    write(tmp_path / "a.log", ["a 3"])
    write(tmp_path / "b.log", ["b 3"])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(2)
        time.sleep(0.3)
        assert sorted(m for _, _, m in driver.collected.emitted) == ["a 3", "b 3"]


def assert_each_once_by_file(driver, expected):
    by_key = {}
    for (key, _), record in driver.collected.stored.items():
        by_key.setdefault(key, []).append(record.parsed.message)
    assert len(by_key) == len(expected)
    assert sorted(sorted(v) for v in by_key.values()) == sorted(sorted(v) for v in expected.values())


def test_copytruncate_during_downtime_with_same_header_loses_nothing(tmp_path):
    # The classic: while the shipper is down the file is copied and truncated, and grows again
    # past the old offset, starting with the same first line. Offset-based resume would skip
    # the new lines; here the content before the checkpoint no longer matches.
    header = "# service log"
    log = tmp_path / "app.log"
    first = [header] + [f"old {i:03d}" for i in range(20)]
    write(log, first)
    config = file_config([str(log)])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(21)
    shutil.copyfile(log, tmp_path / "app.log.1")
    os.truncate(log, 0)
    second = [header] + [f"new {i:03d} and longer" for i in range(40)]
    write(log, second)
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(41)
        time.sleep(0.3)
        assert_each_once(driver.collected, second)


def test_copytruncate_during_downtime_resumes_the_copy(tmp_path):
    # Down with lines unread; the copy is in the globs: it continues from the checkpoint.
    log = tmp_path / "app.log"
    write(log, [f"line {i}" for i in range(10)])
    config = file_config([str(tmp_path / "app.log*")])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(10)
    write(log, [f"line {i}" for i in range(10, 15)])       # written while the agent is down
    shutil.copyfile(log, tmp_path / "app.log.1")
    os.truncate(log, 0)
    write(log, [f"line {i}" for i in range(15, 20)])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(10)
        time.sleep(0.3)
        assert_each_once(driver.collected, [f"line {i}" for i in range(10, 20)])


def test_inode_reuse_is_not_taken_for_the_old_file(tmp_path):
    log = tmp_path / "app.log"
    write(log, [f"first file {i}" for i in range(5)])
    config = file_config([str(log)])
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(5)
    os.unlink(log)
    write(log, [f"second file {i}" for i in range(8)])   # may well get the same inode number
    with Driver(config, tmp_path / "state") as driver:
        driver.wait_count(8)
        time.sleep(0.2)
        assert_each_once(driver.collected, [f"second file {i}" for i in range(8)])


def test_lag_bytes_is_size_minus_checkpoint(tmp_path):
    log = tmp_path / "app.log"
    write(log, ["x" * 99] * 10)
    with Driver(file_config([str(log)]), tmp_path / "state", commit=False) as driver:
        driver.wait_count(10)
        assert driver.source.lag_bytes() == {f"file:{log}": 1000}
        (key,) = driver.source._tails
        driver.source.commit((key, 600, str(log), ""))
        assert driver.source.lag_bytes() == {f"file:{log}": 400}
