"""Writer shards (`[storage] writer_shards`, docs/storage-model.md §5): a large transaction's rows
of one tier and period go to several partition files, filled by as many threads at once. One
chain and one commit record, so search, follow, dedup, retention and verify see one store."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.config import CollectorConfig, RetentionConfig
from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.signing import Signer
from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore
from fleetlog.collector.store.sqlite_verify import verify_db
from fleetlog.collector.store.sqlite_writer import MIN_SHARD_ROWS
from fleetlog.common.timefmt import now_us
from tests.unit.store_helpers import event_count, incoming, purge_once

DAY = 86400 * 1_000_000
_STARTED = now_us()
MIDNIGHT = _STARTED - _STARTED % DAY
NOW = MIDNIGHT + 8 * 3600 * 1_000_000
BIG = 3 * MIN_SHARD_ROWS      # rows of one partition in one transaction: enough for three shards


def _names(tmp_path) -> list[str]:
    return sorted(p.stem for p in (tmp_path / "partitions").glob("*.db"))


def _day(age: int) -> str:
    import datetime as dt
    return (dt.datetime.fromtimestamp((MIDNIGHT - age * DAY) / 1e6, dt.UTC)).strftime("%Y%m%dT%H%M")


def _big_batch(source: str, first: int, time_us: int, count: int = BIG) -> list:
    """Two chunks of one source: `count` events at consecutive positions and times."""
    half = count // 2
    return [incoming("web-1", source, list(range(first + start, first + end)),
                     time_us=[time_us + p for p in range(first + start, first + end)],
                     messages=[f"event {source} {p}" for p in range(first + start, first + end)])
            for start, end in ((0, half), (half, count))]


def test_a_large_transaction_is_split_over_the_shard_files_and_reads_back_as_one_store(tmp_path):
    store = SqliteStore(tmp_path / "events.db", collector="c1", writer_shards=3)
    results = store.store_batch(_big_batch("a", 0, NOW - 10 * BIG), NOW)
    assert sum(r.stored for r in results) == BIG
    # Shard 0 keeps the name a store without shards uses; the others add -s1, -s2.
    assert _names(tmp_path) == [f"general-{_day(0)}", f"general-{_day(0)}-s1", f"general-{_day(0)}-s2"]
    assert sorted(p.count for p in store.partitions()) == [BIG // 3] * 3
    # A small transaction goes to one file (not worth the threads).
    store.store_batch([incoming("web-1", "small", [1, 2, 3], time_us=[NOW - 1] * 3)], NOW)
    assert event_count(store) == BIG + 3 and len(store.partitions()) == 3

    reader = SqliteReader(str(tmp_path / "events.db"))
    everything = build_filter_spec({})
    times = [row[2] for page in reader.search(everything) for row in page]
    assert len(times) == BIG + 3 and times == sorted(times)
    newest = [row[16] for page in reader.search(everything, order="desc", limit=4) for row in page]
    assert newest == ["line 3", "line 2", "line 1", f"event a {BIG - 1}"]
    # Follow reads by seq across the shards: every event once, in seq order, no gap.
    cursor, seqs = {}, []
    while batch := reader.read_after(cursor, None, 700):
        for chain_id, rows in batch:
            seqs += [row[0] for row in rows]
            cursor[chain_id] = rows[-1][0]
    assert seqs == list(range(1, BIG + 4))
    keyword = build_filter_spec({"message": f"{BIG - 2}"})
    assert [row[16] for page in reader.search(keyword) for row in page] == [f"event a {BIG - 2}"]
    reader.close()
    store.close()


def test_dedup_spans_the_shards_and_a_changed_shard_count_needs_no_migration(tmp_path):
    store = SqliteStore(tmp_path / "events.db", collector="c1", writer_shards=2)
    store.store_batch(_big_batch("a", 0, NOW - 10 * BIG), NOW)
    # The same events again, in another split (one chunk): every one a duplicate.
    [again] = store.store_batch([incoming("web-1", "a", list(range(BIG)), time_us=[NOW] * BIG)], NOW)
    assert (again.stored, again.duplicates) == (0, BIG)
    store.close()
    # Reopened with one shard: the shard files stay part of the store, and still dedup.
    single = SqliteStore(tmp_path / "events.db", collector="c1", writer_shards=1)
    [result] = single.store_batch([incoming("web-1", "a", list(range(BIG - 5, BIG + 5)),
                                            time_us=[NOW] * 10)], NOW)
    assert (result.stored, result.duplicates) == (5, 5)
    assert event_count(single) == BIG + 5
    single.close()
    wider = SqliteStore(tmp_path / "events.db", collector="c1", writer_shards=4)
    [result] = wider.store_batch([incoming("web-1", "a", list(range(2 * BIG)), time_us=[NOW] * 2 * BIG)], NOW)
    assert (result.stored, result.duplicates) == (2 * BIG - (BIG + 5), BIG + 5)
    # A shard takes at least MIN_SHARD_ROWS: BIG - 5 new rows make two shards' worth, not four.
    assert len(_names(tmp_path)) == 2
    wider.close()


def test_retention_drops_every_shard_of_an_expired_day_and_the_chain_verifies(tmp_path):
    key = Ed25519PrivateKey.generate()
    store = SqliteStore(tmp_path / "events.db", collector="c1", writer_shards=2)
    Signer(key, "c1", 500).attach(store)
    for age in (40, 39, 1):
        store.store_batch(_big_batch(f"day{age}", 0, MIDNIGHT - age * DAY + 3600 * 1_000_000), NOW)
    assert len(_names(tmp_path)) == 6
    config = CollectorConfig(node_name="c1", retention=RetentionConfig(general=30 * 86400, security=30 * 86400))
    [run], _ = purge_once(store, config, NOW, chunk=100)
    assert (run.tier, run.count, len(run.partitions)) == ("general", 2 * BIG, 4)
    assert [n for n in _names(tmp_path) if n.startswith("general-")] == [
        f"general-{_day(1)}", f"general-{_day(1)}-s1"]
    Signer(key, "c1", 500).checkpoint_head(store)
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == BIG + 1     # + the purge event
