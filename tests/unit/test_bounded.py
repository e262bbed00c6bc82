"""The suite's own bound for asyncio code fires even on a task that ignores cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.bounded import run_bounded


async def _stubborn() -> None:
    while True:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            continue   # swallows every cancellation, like the lost one in agent/shipper.py did


def test_run_bounded_fails_a_coroutine_that_ignores_cancellation_instead_of_hanging():
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"did not finish within 1 s; still running: test-main at _stubborn"):
        run_bounded(_stubborn(), timeout=1.0, cancel_grace=0.5)
    assert time.monotonic() - started < 30


def test_run_bounded_names_a_leftover_task_that_ignores_cancellation():
    async def leaves_one_behind() -> str:
        asyncio.get_running_loop().create_task(_stubborn(), name="left-behind")
        return "done"

    with pytest.raises(AssertionError, match="tasks ignored cancellation for 0 s: left-behind"):
        run_bounded(leaves_one_behind(), timeout=5.0, cancel_grace=0.2)


def test_run_bounded_returns_the_result():
    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    assert run_bounded(answer(), timeout=5.0) == 42
