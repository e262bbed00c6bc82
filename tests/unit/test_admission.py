"""The collector's bound on received-but-uncommitted events (collector/admission.py)."""

import asyncio

from fleetlog.collector.admission import EventBudget
from tests.bounded import run_bounded


def test_a_batch_waits_until_committed_events_free_the_budget():
    async def scenario() -> list[str]:
        budget = EventBudget(10_000)
        order: list[str] = []
        await budget.acquire(6_000)
        await budget.acquire(4_000)

        async def third() -> None:
            await budget.acquire(5_000)
            order.append("third admitted")

        waiter = asyncio.create_task(third())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        order.append(f"in use {budget.in_use}")
        await budget.release(4_000)          # 6,000 + 5,000 still does not fit
        await asyncio.sleep(0)
        order.append(f"in use {budget.in_use}")
        await budget.release(6_000)
        await asyncio.wait_for(waiter, 5)
        order.append(f"in use {budget.in_use}")
        return order

    assert run_bounded(scenario(), timeout=30) == ["in use 10000", "in use 6000", "third admitted", "in use 5000"]


def test_a_batch_larger_than_the_budget_is_let_in_alone():
    async def scenario() -> int:
        budget = EventBudget(1_000)
        await asyncio.wait_for(budget.acquire(50_000), 5)
        return budget.in_use

    assert run_bounded(scenario(), timeout=30) == 50_000


def test_bytes_count_too_few_huge_events_wait_for_the_byte_budget():
    async def scenario() -> list[str]:
        budget = EventBudget(10_000, max_bytes=64 << 20)
        await budget.acquire(10, 60 << 20)
        waiter = asyncio.create_task(budget.acquire(10, 16 << 20))   # 20 events fit, 76 MiB do not
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen = [f"waiting {not waiter.done()}"]
        await budget.release(10, 60 << 20)
        await asyncio.wait_for(waiter, 5)
        seen.append(f"in use {budget.in_use} events, {budget.bytes_in_use >> 20} MiB")
        return seen

    assert run_bounded(scenario(), timeout=30) == ["waiting True", "in use 10 events, 16 MiB"]


def test_rejections_are_counted_every_time_and_logged_once_per_peer_and_cause(caplog):
    from prometheus_client import CollectorRegistry, Counter

    from fleetlog.collector.rejections import Rejections
    now = [0.0]
    counter = Counter("rejected", "x", ["reason"], registry=CollectorRegistry())
    rejections = Rejections(counter, interval=60.0, clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="fleetlog.collector.rejections"):
        for _ in range(5):
            rejections.refuse("10.0.0.1", "bad_columns", "columns differ")
        rejections.refuse("10.0.0.2", "bad_columns", "columns differ")
        rejections.refuse("10.0.0.1", "unknown_codec", "codec 9")
        now[0] = 61.0
        rejections.refuse("10.0.0.1", "bad_columns", "columns differ")
    assert counter.labels("bad_columns")._value.get() == 7
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and not any(r.exc_info for r in caplog.records)
    assert lines[-1].endswith("columns differ (4 more refused for the same cause since the last line)")
