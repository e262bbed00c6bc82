"""A purge run in a process of its own, for the crash test: opens the store in DATA_DIR as the
collector does at start (repair, recovery of an interrupted purge, signing key), says "purging",
purges with the retention the test uses (saying "step" after each writer step of it), signs the
head and says "done".

    python -m tests.faults.purge_worker DATA_DIR NOW_US
"""

from __future__ import annotations

import asyncio
import sys
import time

from fleetlog.collector.config import CollectorConfig, NamespaceRetention, RetentionConfig
from fleetlog.collector.retention import RetentionScheduler, recover_pending
from fleetlog.collector.signing import Signer
from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore
from fleetlog.collector.writer import StorageWriter
from fleetlog.common.checkpoints import load_private_key

CONFIG = CollectorConfig(node_name="c1", retention=RetentionConfig(
    general=30 * 86400, security=20 * 86400,
    namespaces={"staging": NamespaceRetention(general=7 * 86400), "legal": NamespaceRetention(security=float("inf"))}))


def open_store(data_dir: str) -> tuple[SqliteStore, Signer]:
    """As the collector opens its store: repair, signing key, then any interrupted purge recorded."""
    store = SqliteStore(f"{data_dir}/events.db", collector="c1")
    signer = Signer(load_private_key(f"{data_dir}/signing.key"), "c1", 10)
    signer.attach(store)
    recover_pending(store, "c1")
    return store, signer


def _announce_steps(store: SqliteStore) -> None:
    """Print "step" after each writer step of the purge and pause briefly, so the test can kill
    this process between steps and, with a little delay, inside the next one."""
    for name in ("delete_events", "add_anchors", "drop_partitions"):
        method = getattr(store, name)

        def stepped(*args, method=method, **kwargs):
            result = method(*args, **kwargs)
            print("step", flush=True)
            time.sleep(0.02)
            return result
        setattr(store, name, stepped)


def main() -> None:
    data_dir, now = sys.argv[1], int(sys.argv[2])
    store, signer = open_store(data_dir)
    _announce_steps(store)
    writer = StorageWriter(store)
    scheduler = RetentionScheduler(CONFIG, lambda: SqliteReader(store.path), writer, chunk=10)
    print("purging", flush=True)

    async def go() -> None:
        try:
            await scheduler.purge_once(now=now)
        finally:
            await scheduler.stop()
    asyncio.run(go())
    writer.call_sync(signer.checkpoint_head)
    writer.stop()
    store.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
