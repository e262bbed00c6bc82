"""kill -9 in the middle of a retention purge (issue 21): whenever the process dies — writing
anchors, deleting rows of a namespace override, dropping partitions — the store opens, verifies,
and the next purge finishes the work, with exactly the events of the retention left."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from common.checkpoints import write_key_pair
from common.verify import verify_db
from tests.faults.purge_worker import open_store
from tests.harness import ROOT, env
from tests.unit.store_helpers import event_rows
from tests.unit.test_partitions import NOW, _signed_store

DEADLINE = 60.0


def _start(data_dir) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.faults.purge_worker", str(data_dir), str(NOW)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)


def _wait_line(process: subprocess.Popen, wanted: str) -> bool:
    """True when the process printed `wanted`; False when it ended first. Bounded by DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.strip() == wanted:
            return True
        if not line and process.poll() is not None:
            return False
    process.kill()
    raise AssertionError(f"purge worker did not print {wanted!r} within {DEADLINE}s")


def _kept(store) -> dict[tuple[str, str], set[int]]:
    found: dict[tuple[str, str], set[int]] = {}
    for ns, tier, message in event_rows(store, "SELECT namespace, tier, message FROM events WHERE action IS NULL"):
        found.setdefault((ns, tier), set()).add(int(message.split()[2][:-1]))
    return found


def test_kill_9_anywhere_in_a_purge_leaves_a_store_that_opens_verifies_and_purges_again(tmp_path):
    _, _, key = write_key_pair(str(tmp_path))
    _signed_store(tmp_path, key).close()
    kills = 0
    for delay in (0.05, 0.2, 0.4, 0.7, 1.0, 1.5, 2.5, 4.0, 8.0, 30.0):
        process = _start(tmp_path)
        try:
            assert _wait_line(process, "purging"), process.stderr.read()
            time.sleep(delay)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(timeout=DEADLINE)
            finished = process.returncode == 0 and "done" in process.stdout.read()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        # Opens (repair, interrupted purge recorded) and verifies after every kill.
        store, signer = open_store(str(tmp_path))
        signer.checkpoint_head(store)
        store.close()
        verify_db(str(tmp_path), key.public_key())
        if finished:
            break
    else:
        raise AssertionError("the purge never finished")
    assert kills >= 3, "too few kills landed inside the purge to mean anything"
    store, _ = open_store(str(tmp_path))
    kept = _kept(store)
    store.close()
    assert kept[("default", "general")] == kept[("legal", "general")] == set(range(1, 31))
    assert kept[("staging", "general")] == set(range(1, 8))
    assert kept[("default", "security")] == kept[("staging", "security")] == set(range(1, 21))
    assert kept[("legal", "security")] == set(range(1, 41))
    # Every purged event is accounted for by the purge events (those of killed runs included).
    counts = [int(n) for (n,) in _purge_counts(tmp_path)]
    assert sum(counts) == 10 * 9 + 23 * 3 + 20 * 6


def _purge_counts(data_dir) -> list[tuple]:
    store, _ = open_store(str(data_dir))
    try:
        return event_rows(store, "SELECT json_extract(fields, '$.count') FROM events WHERE action = ?",
                          ("Collector.Retention.Purge",))
    finally:
        store.close()
