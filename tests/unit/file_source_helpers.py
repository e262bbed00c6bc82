"""Drive a real FileSource over real files, with an emit that plays the pipeline: it records every
event under its (identity, position) id the way the collector deduplicates, and commits each
batch at once (as if it were durable)."""

from __future__ import annotations

import asyncio
import collections
import pathlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from fleetlog.agent.sources.base import SourceBatch
from fleetlog.agent.sources.file import FileSource, FileSourceConfig
from fleetlog.agent.sources.multiline import MultilineConfig


def file_config(paths: list[str], **overrides: Any) -> FileSourceConfig:
    if isinstance(overrides.get("multiline"), dict):
        overrides["multiline"] = MultilineConfig(**overrides["multiline"])
    return FileSourceConfig(type="file", paths=paths, name="test", **overrides)


@dataclass
class Collected:
    emitted: list[tuple[str, int, str]] = field(default_factory=list)  # every record as emitted
    stored: dict[tuple[str, int], Any] = field(default_factory=dict)   # first record per id
    batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def messages(self) -> list[str]:
        with self.lock:
            return [record.parsed.message for record in self.stored.values()]

    def records(self) -> list[Any]:
        with self.lock:
            return list(self.stored.values())

    def count(self) -> int:
        with self.lock:
            return len(self.stored)

    def has(self, message: str) -> bool:
        with self.lock:
            return any(r.parsed.message == message for r in self.stored.values())


class Driver:
    """Runs FileSource.run in an event loop on a background thread."""

    def __init__(self, config: FileSourceConfig, state_dir: pathlib.Path, commit: bool = True):
        self.source = FileSource(config, state_dir)
        self.collected = Collected()
        self.commit = commit
        self.reads: collections.Counter[str] = collections.Counter()
        self.source.on_read = lambda label, n: self.reads.update({label: n})
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[Any] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    async def _emit(self, batch: SourceBatch) -> None:
        with self.collected.lock:
            self.collected.batches += 1
            for record in batch.records:
                self.collected.emitted.append((batch.source_key, record.position, record.parsed.message))
                self.collected.stored.setdefault((batch.source_key, record.position), record)
        if self.commit:
            self.source.commit(batch.checkpoint)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self.source.run(self._emit))
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # noqa: BLE001 — surfaced by wait()
            self.error = exc

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(lambda: self._task and self._task.cancel())
            self._thread.join(10)
        if not self._loop.is_closed() and not self._thread.is_alive():
            self._loop.close()

    def wait(self, predicate: Callable[[Collected], bool], timeout: float = 20.0, what: str = "events") -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.collected):
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; have {self.collected.count()} events")
            time.sleep(0.02)

    def wait_tailing(self, files: int = 1, timeout: float = 10.0) -> None:
        """Until the source has opened `files` files (its first scan is done)."""
        deadline = time.monotonic() + timeout
        while len(self.source._tails) < files:
            if time.monotonic() > deadline:
                raise AssertionError(f"the source did not open {files} file(s)")
            time.sleep(0.01)

    def wait_count(self, n: int, timeout: float = 20.0) -> None:
        self.wait(lambda c: c.count() >= n, timeout, f"{n} events")


def assert_each_once(collected: Collected, expected: list[str]) -> None:
    """Every expected line is stored exactly once: no loss, and no line under two ids."""
    messages = collected.messages()
    counts = collections.Counter(messages)
    missing = [m for m in expected if counts[m] == 0]
    doubled = [m for m, n in counts.items() if n > 1]
    unexpected = set(counts) - set(expected)
    assert not missing, f"{len(missing)} lines lost, first {missing[:3]}"
    assert not doubled, f"{len(doubled)} lines stored twice, first {doubled[:3]}"
    assert not unexpected, f"unexpected events {sorted(unexpected)[:3]}"
    assert len(messages) == len(expected)
