"""The forwarder (sink) interface the runner drives.

A sink gets batches of presented events (common.event.present) that passed its filter. `send`
writes them (opening its connection or file when needed) and raises DeliveryError when it could
not; `delivered(wait)` says whether everything sent so far is confirmed, so the runner may move
the durable cursor past it. `close` releases the connection; `abort` (from another thread)
unblocks a send stuck on a dead peer at shutdown.
"""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    target: str

    def send(self, events: list[dict[str, Any]]) -> None: ...

    def delivered(self, wait: bool) -> bool: ...

    def abort(self) -> None:
        """Called from another thread at shutdown: unblock a pending send or wait."""

    def close(self) -> None: ...
