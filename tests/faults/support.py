"""Shared pieces of the fault tests: numbered log lines, a paced writer, counting what a
collector stored (polling reads its SQLite file; final checks go through `fleetlog search`)."""

from __future__ import annotations

import collections
import pathlib
import threading
import time

from fleetlog.common.errors import StorageError
from tests.harness import Daemon, committed_events, search_json, wait_for, write_lines


def numbered(start: int, count: int) -> list[str]:
    """~120-byte lines, each carrying its number as `seq=` (a field the checks read back)."""
    return [f"2025-12-02T14:30:45.{i % 1_000_000:06d}Z INFO req=r{i % 97:05d} user=user{i % 13}@example.com "
            f"Authentication SUCCESS via LDAP seq={i:09d}" for i in range(start, start + count)]


class PacedWriter(threading.Thread):
    """Appends lines start..start+count in chunks over about `seconds` (the workload, so the
    faults happen mid-stream); `join()` waits for the last line."""

    def __init__(self, path: pathlib.Path, start: int, count: int, seconds: float, chunk: int = 1000):
        super().__init__(name="paced-writer", daemon=True)
        self.path, self.start_at, self.count, self.seconds, self.chunk = path, start, count, seconds, chunk
        self.written = 0

    def run(self) -> None:
        pause = self.seconds / max(1, self.count // self.chunk)
        for offset in range(0, self.count, self.chunk):
            size = min(self.chunk, self.count - offset)
            write_lines(self.path, numbered(self.start_at + offset, size))
            self.written += size
            time.sleep(pause)


def stored_count(collector: Daemon, host: str) -> int:
    """Rows the collector has committed for `host`, read from its database (works while the
    collector is down, and across its restarts, unlike its counters)."""
    path = pathlib.Path(collector.config["data_dir"]) / "events.db"
    if not path.exists():
        return 0
    try:
        return committed_events(path, host)
    except StorageError:
        return 0     # the collector is creating the store


def wait_stored(collector: Daemon, host: str, count: int, timeout: float = 60.0) -> None:
    wait_for(lambda: stored_count(collector, host) >= count, timeout,
             f"{count} events from {host} stored by {collector.config['node_name']}")


def stored_seqs(collector: Daemon, host: str) -> collections.Counter[int]:
    """How many times each line number is stored, as `fleetlog search` returns them."""
    events = search_json(collector, "--host", host)
    return collections.Counter(int(e["message"].rsplit("seq=", 1)[1]) for e in events)


def assert_exactly_once(collector: Daemon, host: str, expected: range | set[int]) -> None:
    seqs = stored_seqs(collector, host)
    missing = set(expected) - set(seqs)
    extra = set(seqs) - set(expected)
    repeated = {seq: n for seq, n in seqs.items() if n > 1}
    assert not missing and not extra and not repeated, (
        f"{len(missing)} missing (e.g. {sorted(missing)[:5]}), {len(extra)} unexpected "
        f"(e.g. {sorted(extra)[:5]}), {len(repeated)} stored twice (e.g. {sorted(repeated)[:5]})")
