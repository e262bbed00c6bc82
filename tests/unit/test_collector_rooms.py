"""The collector's rooms without a server: a batch's way through the intake (admission budget,
per-node counts, the denial of a namespace, re-delivery) and the throttling of denials, on a real
SQLite store behind a real storage writer."""

from __future__ import annotations

import asyncio
import types

import pytest

from fleetlog.collector.admission import EventBudget
from fleetlog.collector.classify import Classifier
from fleetlog.collector.config import CollectorConfig, LevelsConfig
from fleetlog.collector.denials import DENIAL_AUDIT_INTERVAL, Denials
from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.identity import Caller
from fleetlog.collector.ingest import BadBatch, IngestLimits, Origin
from fleetlog.collector.intake import Committed, Intake
from fleetlog.collector.metrics import CollectorMetrics
from fleetlog.collector.nodes import Nodes
from fleetlog.collector.own_events import OwnEvents
from fleetlog.collector.query import QueryEngine
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.collector.writer import StorageWriter
from fleetlog.common.levels import Level
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from tests.bounded import run_bounded


def _chunk(namespace: str, levels: list[int], first: int = 0) -> pb.Chunk:
    n = len(levels)
    return pb.Chunk(source="file:/a.log", source_key=f"a-{namespace}", namespace=namespace, log_type="application",
                    position=list(range(first, first + n)), time_us=[1_700_000_000_000_000] * n,
                    level=bytes(levels), message=[f"m{i}" for i in range(n)], request_id=[""] * n, user=[""] * n,
                    action=[""] * n, app=[""] * n, pid=[0] * n, fields_json=[""] * n, flags=bytes(n))


@pytest.fixture
def rooms(tmp_path):
    path = str(tmp_path / "events.db")
    store = SqliteStore(path, "normal", collector="c1")
    writer = StorageWriter(store)
    metrics = CollectorMetrics()
    query = QueryEngine(path)
    own_events = OwnEvents(writer, query, store.chain, lambda: "c1")
    nodes = Nodes(metrics)
    budget = EventBudget(1_000, 1 << 20)
    classifier = Classifier(CollectorConfig(levels=LevelsConfig(default=Level.INFO)))
    intake = Intake(budget=budget, limits=IngestLimits(), classifier=lambda: classifier, writer=writer,
                    nodes=nodes, metrics=metrics, denials=Denials(own_events, metrics.denials_not_recorded))
    yield types.SimpleNamespace(intake=intake, budget=budget, nodes=nodes, metrics=metrics, query=query,
                                own_events=own_events)
    writer.stop()
    store.close()


def _events(query: QueryEngine, action: str) -> list[dict]:
    return [e for page in query.search(build_filter_spec({"action": action})) for e in page]


def test_a_batch_is_stored_counted_and_gives_its_budget_back(rooms):
    origin = Origin(host="web-1", host_ip="10.0.0.1", namespaces=("default",))

    def batch() -> pb.Batch:   # two kept, one debug line below the threshold, one denied namespace
        return pb.Batch(batch_id=1, chunks=[_chunk("default", [6, 3, 7]), _chunk("payments", [3])])

    async def scenario() -> tuple[Committed, Committed, list[dict]]:
        rooms.own_events.start(asyncio.get_running_loop())
        await rooms.intake.admit(100)
        admitted = await rooms.intake.prepare(batch(), 100, origin)
        assert (rooms.budget.in_use, admitted.cost) == (4, (4, 100))
        first = await rooms.intake.commit(admitted)
        await rooms.intake.admit(100)
        again = await rooms.intake.commit(await rooms.intake.prepare(batch(), 100, origin))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not (denied := await asyncio.to_thread(_events, rooms.query, "audit/denied")):
            assert loop.time() < deadline, "the denied namespace was never recorded"
            await asyncio.sleep(0.02)
        return first, again, denied

    first, again, denied = run_bounded(scenario(), timeout=60)
    assert first == Committed(stored=2, duplicates=0, dropped=2)
    assert again == Committed(stored=0, duplicates=2, dropped=2)   # a re-delivery is not stored twice
    assert (rooms.budget.in_use, rooms.budget.bytes_in_use) == (0, 0)
    assert rooms.nodes.get("web-1").events == 2
    assert [e["message"] for e in denied] == ["denied ingest for web-1 (agent): may not write namespace 'payments'"]
    dropped = rooms.metrics.registry.get_sample_value
    assert dropped("fleetlog_collector_events_dropped_total", {"reason": "namespace_denied"}) == 2
    assert dropped("fleetlog_collector_events_dropped_total", {"reason": "below_level"}) == 2


def test_a_refused_batch_gives_its_budget_back_and_stores_nothing(rooms):
    broken = pb.Batch(batch_id=2, chunks=[_chunk("default", [6, 6])])
    del broken.chunks[0].message[1]   # columns of different lengths
    origin = Origin(host="web-1", host_ip="10.0.0.1")

    async def scenario() -> None:
        await rooms.intake.admit(50)
        with pytest.raises(BadBatch):
            await rooms.intake.prepare(broken, 50, origin)

    run_bounded(scenario(), timeout=30)
    assert (rooms.budget.in_use, rooms.budget.bytes_in_use) == (0, 0)
    assert rooms.query.count() == 0


def test_a_repeated_denial_is_stored_once_per_interval_with_the_count_of_repeats(rooms):
    now = [1_000.0]
    denials = Denials(rooms.own_events, rooms.metrics.denials_not_recorded, clock=lambda: now[0])
    caller = Caller("alice", "reader", "10.0.0.7", None, "token")

    async def scenario() -> None:
        for _ in range(3):
            await denials.record(caller, "note", "role reader may not add notes", None)
        await denials.record(Caller("bob", "reader", "10.0.0.8", None, "token"), "note",
                             "role reader may not add notes", None)   # another caller: its own record
        now[0] += DENIAL_AUDIT_INTERVAL
        await denials.record(caller, "note", "role reader may not add notes", None)

    run_bounded(scenario(), timeout=30)
    stored = _events(rooms.query, "audit/denied")
    assert [(e["user"], e["fields"].get("repeats_not_recorded")) for e in stored] == [
        ("alice", None), ("bob", None), ("alice", 2)]


def test_one_address_stores_at_most_five_denials_per_interval_and_the_next_counts_the_rest(rooms):
    """Varying what is denied (routes, namespaces) no longer stores one event each."""
    now = [1_000.0]
    denials = Denials(rooms.own_events, rooms.metrics.denials_not_recorded, clock=lambda: now[0])

    async def scenario() -> None:
        for i in range(40):
            await denials.record(None, f"ingest into ns-{i}", "unknown token", None, ip="10.0.0.9")
        await denials.record(None, "search", "unknown token", None, ip="10.0.0.10")   # another address
        now[0] += DENIAL_AUDIT_INTERVAL
        await denials.record(None, "search", "unknown token", None, ip="10.0.0.9")

    run_bounded(scenario(), timeout=30)
    stored = [(e["fields"]["operation"], e["fields"].get("repeats_not_recorded")) for e in
              _events(rooms.query, "audit/denied")]
    assert stored == [(f"ingest into ns-{i}", None) for i in range(5)] + [("search", None), ("search", 35)]
    assert rooms.metrics.denials_not_recorded._value.get() == 35
