"""The same events twice in one storage transaction (issue 20): an agent re-sending on a new
stream what its old stream had queued, or a peer doing it on purpose. The second copy is a
duplicate; it must not fail the whole group (and with it other agents' batches)."""

from collector.store.sqlite import SqliteStore
from tests.unit.store_helpers import incoming


def test_a_batch_repeated_within_one_transaction_is_stored_once(tmp_path):
    store = SqliteStore(str(tmp_path / "events.db"), "normal", collector="c1")
    try:
        other = incoming("web-2", "b.log", [0, 1])
        results = store.store_batch([incoming("web-1", "a.log", [0, 1, 2]), other,
                                     incoming("web-1", "a.log", [1, 2, 3])], 1_700_000_000_000_000)
        assert [(r.stored, r.duplicates) for r in results] == [(3, 0), (2, 0), (1, 2)]
        assert store.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 6
    finally:
        store.close()
