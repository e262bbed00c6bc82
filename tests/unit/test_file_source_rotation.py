"""Rotation while a writer keeps writing: rename+create, copytruncate and delete-while-open, five
times each, every line found exactly once; plus the known failure modes of other shippers."""

from __future__ import annotations

import os
import pathlib
import shutil
import threading
import time

import pytest

import fleetlog.agent.sources.file as file_module
from tests.unit.file_source_helpers import Driver, assert_each_once, file_config

HEADER = "# app log v1 (same first line in every file)"


@pytest.fixture(autouse=True)
def quick_timers(monkeypatch):
    # The same code paths, just sooner: rescans and the let-go of rotated files.
    monkeypatch.setattr(file_module, "RESCAN_INTERVAL", 0.2)
    monkeypatch.setattr(file_module, "ROTATE_WAIT", 0.3)


class Writer(threading.Thread):
    """Appends numbered lines (O_APPEND, flushed per line) until stopped, like a daemon would.
    `reopen_after(n)`: keep writing n more lines to the open handle, then reopen the path (the
    daemon's reaction to a rotation signal, which always comes a little late)."""

    def __init__(self, path: pathlib.Path, header: str | None = None, pause_every: int = 10):
        super().__init__(daemon=True)
        self.path, self.header, self.pause_every = path, header, pause_every
        self.lock = threading.Lock()
        self.written: list[str] = []
        self._reopen_in: int | None = None
        self._halt = threading.Event()

    def reopen_after(self, lines: int) -> None:
        with self.lock:
            self._reopen_in = lines

    def _open(self):
        handle = open(self.path, "a")  # noqa: SIM115 — held open across writes, like a daemon
        if self.header and handle.tell() == 0:
            handle.write(self.header + "\n")
            handle.flush()
        return handle

    def write_header_if_empty(self, handle) -> None:
        if self.header and os.fstat(handle.fileno()).st_size == 0:
            handle.write(self.header + "\n")

    def run(self) -> None:
        handle = self._open()
        i = 0
        while not self._halt.is_set():
            with self.lock:
                if self._reopen_in is not None:
                    if self._reopen_in == 0:
                        handle.close()
                        handle = self._open()
                        self._reopen_in = None
                    else:
                        self._reopen_in -= 1
                self.write_header_if_empty(handle)
                line = f"line {i:06d} " + "x" * (i % 50)
                handle.write(line + "\n")
                handle.flush()
                self.written.append(line)
            i += 1
            if i % self.pause_every == 0:
                time.sleep(0.002)
        handle.close()

    def stop(self) -> list[str]:
        self._halt.set()
        self.join(10)
        return self.expected()

    def expected(self) -> list[str]:
        lines = list(self.written)
        if self.header:
            lines.append(self.header)
        return lines

    def count(self) -> int:
        return len(self.written)


def run_rotations(tmp_path: pathlib.Path, glob: str, rotate, rotations: int = 5, header: str | None = None,
                  **config) -> tuple[Driver, list[str]]:
    log_path = tmp_path / "logs" / "app.log"
    log_path.parent.mkdir()
    writer = Writer(log_path, header)
    writer.start()
    with Driver(file_config([str(tmp_path / "logs" / glob)], **config), tmp_path / "state") as driver:
        for k in range(1, rotations + 1):
            # Rotate only once the source reads the current file (rotations are never faster
            # than discovery in real life), with the writer running all along.
            mark = f"line {writer.count() + 20:06d} "
            driver.wait(lambda c, m=mark: any(msg.startswith(m) for msg in c.messages()), 20, f"{mark}before rotation {k}")
            rotate(log_path, k, writer)
        time.sleep(0.2)
        expected = writer.stop()
        # The header appears once per file (each is its own event with its own id).
        header_count = sum(1 for p in log_path.parent.iterdir()) if header else 0
        expected_count = len(writer.written) + header_count
        driver.wait_count(expected_count, 30)
        time.sleep(0.3)   # anything extra (a duplicate) would arrive now
    return driver, expected


def rename_create(path: pathlib.Path, k: int, writer: Writer) -> None:
    os.rename(path, path.with_name(f"app.log.{k}"))
    writer.reopen_after(5)


def delete_while_open(path: pathlib.Path, k: int, writer: Writer) -> None:
    os.unlink(path)
    writer.reopen_after(5)


def copytruncate(path: pathlib.Path, k: int, writer: Writer) -> None:
    # logrotate's copy-then-truncate loses what is written in between; that race is not the
    # agent's, so the writer pauses for it (its lock).
    with writer.lock:
        shutil.copyfile(path, path.with_name(f"app.log.{k}"))
        os.truncate(path, 0)


def test_rename_create_five_times_while_writing(tmp_path):
    driver, expected = run_rotations(tmp_path, "app.log", rename_create)
    assert_each_once(driver.collected, expected)


def test_delete_while_open_five_times_while_writing(tmp_path):
    driver, expected = run_rotations(tmp_path, "app.log", delete_while_open)
    assert_each_once(driver.collected, expected)
    assert len(list((tmp_path / "logs").iterdir())) == 1


def test_copytruncate_five_times_while_writing_copies_in_glob(tmp_path):
    # The copies match the glob: they share the original's first bytes, so they are recognised
    # as the same identity and not read again as a whole (the classic copytruncate duplicate).
    driver, expected = run_rotations(tmp_path, "app.log*", copytruncate)
    assert_each_once(driver.collected, expected)


def test_copytruncate_with_same_first_line_every_time(tmp_path):
    # Every generation starts with the same header: the reader must notice each truncation
    # although the first bytes never change (the reader that "stops" after copytruncate).
    log_path = tmp_path / "logs" / "app.log"
    driver, _ = run_rotations(tmp_path, "app.log*", copytruncate, header=HEADER)
    messages = driver.collected.messages()
    assert messages.count(HEADER) == 6   # app.log + 5 copies, each its own file
    lines = [m for m in messages if m != HEADER]
    assert len(lines) == len(set(lines))
    assert log_path.exists()


def test_rename_create_same_header_lines_are_separate_sources(tmp_path):
    driver, expected = run_rotations(tmp_path, "app.log*", rename_create, header=HEADER)
    messages = driver.collected.messages()
    assert messages.count(HEADER) == 6
    lines = sorted(m for m in messages if m != HEADER)
    assert lines == sorted(m for m in expected if m != HEADER)
    keys = {key for key, _ in driver.collected.stored}
    assert len(keys) == 6


def slow_copytruncate(path: pathlib.Path, k: int, writer: Writer) -> None:
    # The copy exists (and is scanned) for a while before the truncation.
    with writer.lock:
        shutil.copyfile(path, path.with_name(f"app.log.{k}"))
        time.sleep(0.5)
        os.truncate(path, 0)


def test_copytruncate_copy_seen_before_truncation(tmp_path):
    driver, expected = run_rotations(tmp_path, "app.log*", slow_copytruncate, rotations=3)
    assert_each_once(driver.collected, expected)


def test_copy_of_a_live_file_is_not_read_again(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [f"event {i}" for i in range(200)]
    (logs / "app.log").write_text("".join(x + "\n" for x in lines))
    with Driver(file_config([str(logs / "*.log")]), tmp_path / "state") as driver:
        driver.wait_count(200)
        shutil.copyfile(logs / "app.log", logs / "backup.log")
        with open(logs / "app.log", "a") as handle:
            handle.write("event 200\n")
        lines.append("event 200")
        driver.wait_count(201)
        time.sleep(0.6)   # several rescans see the copy
        assert_each_once(driver.collected, lines)
        assert len(driver.collected.emitted) == 201
