"""Sign the chain head every `signing.checkpoint_interval` seconds when events came in since the
last checkpoint, so a quiet store's newest events are covered by a signature within one interval
(the busy store is also signed every `checkpoint_every` events, in the commit itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fleetlog.collector.signing import Signer
from fleetlog.collector.writer import StorageWriter

log = logging.getLogger("fleetlog.collector")


class CheckpointTimer:
    def __init__(self, writer: StorageWriter, signer: Signer, interval: Callable[[], float]):
        self._writer = writer
        self._signer = signer
        self._interval = interval   # read each round: the config as last reloaded
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Cancel the timer and wait for it (a checkpoint being written finishes on the writer)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval())
            if self._writer.fault:
                continue   # said once by the writer; the head is signed once it can be written
            try:
                await self._writer.call(self._signer.checkpoint_head)
            except Exception as exc:  # noqa: BLE001 — logged; the next interval tries again
                log.error("signing a checkpoint failed: %s", exc)
