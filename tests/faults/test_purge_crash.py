"""kill -9 in the middle of a retention purge (issue 21): whenever the process dies — writing
anchors, deleting rows of a namespace override, dropping partitions — the store opens, verifies,
and the next purge finishes the work, with exactly the events of the retention left."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

from fleetlog.collector.store.sqlite_verify import verify_db
from fleetlog.common.checkpoints import write_key_pair
from tests.faults.purge_worker import open_store
from tests.harness import ROOT, env
from tests.unit.store_helpers import event_rows
from tests.unit.test_partitions import NOW, _signed_store

DEADLINE = 60.0


def _start(data_dir) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.faults.purge_worker", str(data_dir), str(NOW)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)


def _next_line(process: subprocess.Popen) -> str | None:
    """The next line the worker prints, None when it ended. Bounded by DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line:
            return line.strip()
        if process.poll() is not None:
            return None
    process.kill()
    raise AssertionError(f"purge worker printed nothing within {DEADLINE}s")


def _kept(store) -> dict[tuple[str, str], set[int]]:
    found: dict[tuple[str, str], set[int]] = {}
    for ns, tier, message in event_rows(store, "SELECT namespace, tier, message FROM events WHERE action IS NULL"):
        found.setdefault((ns, tier), set()).add(int(message.split()[2][:-1]))
    return found


def test_kill_9_anywhere_in_a_purge_leaves_a_store_that_opens_verifies_and_purges_again(tmp_path):
    _, _, key = write_key_pair(str(tmp_path))
    _signed_store(tmp_path, key).close()
    rng = random.Random(21)
    kills = 0
    for attempt in range(150):
        process = _start(tmp_path)
        finished = False
        try:
            assert _next_line(process) == "purging", process.stderr.read()
            # Kill after a few writer steps of the purge, sometimes at once (between two steps),
            # sometimes a moment later (inside the next one: a commit of the main file, a
            # partition's, a file's deletion).
            for _ in range(1 + attempt % 5):
                line = _next_line(process)
                if line != "step":
                    finished = line == "done"
                    break
            if not finished:
                time.sleep(rng.choice((0.0, 0.0, 0.005, 0.01, 0.02, 0.03)))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    kills += 1
                else:
                    finished = "done" in process.stdout.read()
            process.wait(timeout=DEADLINE)
            assert process.returncode in (0, -signal.SIGKILL), process.stderr.read()
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
    assert kills >= 5, "too few kills landed inside the purge to mean anything"
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
