import json
import random

from fleetlog.collector.filters import build_filter_spec
from fleetlog.common import chain


def _event(rng: random.Random) -> dict:
    # Stored values: optional text is None when absent (the store never keeps "" there).
    text = lambda: rng.choice(["plain", 'quo"te', "back\\\\slash", "nl\\n", "ünïcödé ✓", "\\u0001ctl", "]"])
    return {
        "seq": rng.randint(1, 10**9), "id": "ab" * 16, "time": rng.randint(0, 2**52), "received_at": rng.randint(0, 2**52),
        "host": text() or "h", "host_ip": rng.choice([None, "127.0.0.1"]), "collector": rng.choice([None, "c1"]),
        "namespace": "default", "source": "file:/x", "log_type": "audit", "app": rng.choice([None, text()]),
        "pid": rng.choice([None, 42]), "level": rng.randint(0, 7), "request_id": rng.choice([None, text()]),
        "user": rng.choice([None, text()]), "action": rng.choice([None, text()]), "message": rng.choice(["", text()]),
        "fields": rng.choice([None, '{"a":1}']), "tier": "general", "truncated": rng.randint(0, 1),
    }


def test_fast_canonical_form_equals_sorted_compact_json():
    rng = random.Random(7)
    for _ in range(500):
        event = _event(rng)
        reference = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert chain.canonical_bytes(event) == reference
        assert chain.canonical_values(tuple(event[k] for k in chain.CANONICAL_KEYS)) == reference


def test_chain_links_depend_on_order_and_content():
    a, b = b'{"x":1}', b'{"x":2}'
    ab = chain.extend(chain.extend(chain.GENESIS, a), b)
    ba = chain.extend(chain.extend(chain.GENESIS, b), a)
    assert ab != ba and len(ab) == 32


def test_store_links_match_the_reference_canonical_form(tmp_path):
    """What the writer's fast path hashes is the documented canonical form."""
    from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore, row_to_event
    from tests.unit.store_helpers import event_rows, incoming

    store = SqliteStore(tmp_path / "events.db", collector="c1")
    store.store_batch([incoming("web-1", "k1", [1, 2, 3], messages=['quo"te', "ünï\\n]", "x"],
                                users=["", "bob", "a\\\\b"], pids=[0, 7, 0])], 1234)
    reader = SqliteReader(str(tmp_path / "events.db"))
    rows = [r for page in reader.search(build_filter_spec({})) for r in page]
    link = chain.GENESIS
    stored_links = dict(event_rows(store, "SELECT seq, hash FROM events"))
    for row in rows:
        link = chain.extend(link, chain.canonical_bytes(row_to_event(row)))
        assert stored_links[row[0]] == link
    assert len(rows) == 3


def test_delete_events_leaves_anchors_for_every_gap(tmp_path):
    from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore, anchors_digest
    from tests.unit.store_helpers import event_rows, incoming

    store = SqliteStore(tmp_path / "events.db", collector="c1")
    store.store_batch([incoming("web-1", "k1", list(range(1, 11)))], 1)
    links = dict(event_rows(store, "SELECT seq, hash FROM events"))
    result = store.delete_events([2, 3, 4, 7, 10])
    assert result.count == 5 and result.ranges == [(2, 4), (7, 7), (10, 10)]
    anchors = dict(store.conn.execute("SELECT seq, link FROM chain_anchors"))
    assert anchors == {4: links[4], 7: links[7], 10: links[10]}
    assert result.anchors_sha256 == anchors_digest(list(anchors.items()))
    reader = SqliteReader(str(tmp_path / "events.db"))
    assert [r[0] for page in reader.search(build_filter_spec({})) for r in page] == [1, 5, 6, 8, 9]
    assert sum(n for (n,) in event_rows(store, "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'line'")) == 5


def test_a_batch_the_chain_cannot_encode_is_rolled_back_and_the_next_one_stores(tmp_path):
    import pytest

    from fleetlog.collector.store.sqlite import SqliteStore
    from tests.unit.store_helpers import event_count, incoming

    store = SqliteStore(tmp_path / "events.db", collector="c1")
    bad = incoming("web-1", "k1", [1, 2])
    bad.pid = [0, 1.5]  # no canonical form for a float
    with pytest.raises(TypeError):
        store.store_batch([bad], 1)
    results = store.store_batch([incoming("web-1", "k1", [1, 2, 3])], 2)
    assert results[0].stored == 3 and results[0].first_seq == 1
    assert event_count(store) == 3
