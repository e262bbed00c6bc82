"""The same events twice in one storage transaction (issue 20): an agent re-sending on a new
stream what its old stream had queued, or a peer doing it on purpose. The second copy is a
duplicate; it must not fail the whole group (and with it other agents' batches)."""

from fleetlog.collector.store.sqlite import SqliteStore
from tests.unit.store_helpers import event_count, event_rows, incoming


def test_a_batch_repeated_within_one_transaction_is_stored_once(tmp_path):
    store = SqliteStore(str(tmp_path / "events.db"), "normal", collector="c1")
    try:
        other = incoming("web-2", "b.log", [0, 1])
        results = store.store_batch([incoming("web-1", "a.log", [0, 1, 2]), other,
                                     incoming("web-1", "a.log", [1, 2, 3])], 1_700_000_000_000_000)
        assert [(r.stored, r.duplicates) for r in results] == [(3, 0), (2, 0), (1, 2)]
        assert event_count(store) == 6
    finally:
        store.close()


def test_a_chunk_with_a_duplicate_is_stored_as_the_same_chunk_without_it(tmp_path):
    """A chunk of new events only is built by a faster path than one with duplicates among them:
    both give the same rows, and so the same chain."""
    kwargs = {"users": ["alice", "", "bob", ""], "pids": [1, 0, 2, 0], "request_ids": ["r1", "", "", "r4"],
              "actions": ["", "login", "", ""], "messages": ["a", "b", "c", "d"]}
    clean = SqliteStore(str(tmp_path / "clean" / "events.db"), "normal", collector="c1")
    clean.store_batch([incoming("web-1", "a.log", [5, 6, 7, 8], **kwargs)], 1_700_000_000_000_000)
    mixed = SqliteStore(str(tmp_path / "mixed" / "events.db"), "normal", collector="c1")
    mixed.store_batch([incoming("web-1", "a.log", [6], users=["x"])], 1_700_000_000_000_000)
    [result] = mixed.store_batch([incoming("web-1", "a.log", [5, 6, 7, 8], **kwargs)], 1_700_000_000_000_000)
    assert (result.stored, result.duplicates) == (3, 1)
    columns = "id, time, host, user, pid, request_id, action, message, level, tier, truncated, fields, app"
    by_pos = lambda store: {row[0]: row[1:] for row in event_rows(store, f"SELECT pos, {columns} FROM events")}
    clean_rows, mixed_rows = by_pos(clean), by_pos(mixed)
    assert {pos: clean_rows[pos] for pos in (5, 7, 8)} == {pos: mixed_rows[pos] for pos in (5, 7, 8)}
    assert clean_rows[5][3:7] == ("alice", 1, "r1", None) and clean_rows[6][3:7] == (None, None, None, "login")
