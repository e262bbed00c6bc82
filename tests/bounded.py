"""Running asyncio code in a test with a bound that really fires.

`asyncio.run` cannot be bounded from outside: a signal-based pytest timeout interrupts the loop,
but `asyncio.run` then cancels the remaining tasks and waits for them with no timeout, so a task
that ignores cancellation hangs the test run for good. `run_bounded` waits with `asyncio.wait`
(which never waits for a cancellation to complete), gives cancelled tasks a bounded moment to
finish, and fails the test naming every task that is still running instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _describe(tasks: set[asyncio.Task[Any]]) -> str:
    lines = []
    for task in tasks:
        frames = task.get_stack(limit=3)
        where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames) or "?"
        lines.append(f"{task.get_name()} at {where}")
    return "; ".join(sorted(lines))


def run_bounded(coro: Coroutine[Any, Any, T], timeout: float, cancel_grace: float = 5.0) -> T:
    """Run `coro` to completion within `timeout` seconds, or fail the test without hanging."""
    loop = asyncio.new_event_loop()
    try:
        main = loop.create_task(coro, name="test-main")
        loop.run_until_complete(asyncio.wait({main}, timeout=timeout))
        if not main.done():
            main.cancel()
            loop.run_until_complete(asyncio.wait({main}, timeout=cancel_grace))
            stuck = {t for t in asyncio.all_tasks(loop) if not t.done()}
            raise AssertionError(f"did not finish within {timeout:.0f} s; still running: {_describe(stuck)}")
        leftover = {t for t in asyncio.all_tasks(loop) if not t.done()}
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=cancel_grace))
            stuck = {t for t in leftover if not t.done()}
            if stuck:
                raise AssertionError(f"tasks ignored cancellation for {cancel_grace:.0f} s: {_describe(stuck)}")
        return main.result()
    finally:
        loop.run_until_complete(asyncio.wait({loop.create_task(loop.shutdown_asyncgens())}, timeout=cancel_grace))
        loop.close()
