"""The collector's bound on received-but-uncommitted events (collector/admission.py)."""

import asyncio

from collector.admission import EventBudget
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
