"""The HTTP receivers' connections (OTLP/HTTP, journal-upload), counted and bounded where asyncio
makes them. aiohttp bounds neither the number of open connections nor counts one that is idle
between requests; its keep-alive timer (the listener's idle_timeout) closes a connection that
sends nothing, or only part of a request head, for that long. So a listener holds at most
`limit` connections whatever their state: one more is closed at once and counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class ConnectionLimit:
    """`protocol(make)` is the listener's protocol factory around aiohttp's (`make`, e.g. a
    web.Server): a counted connection while fewer than `limit` are open, else one closed at once
    (`on_refused` is called). `on_count(delta)` follows the open count (a gauge)."""

    def __init__(self, limit: int, on_count: Callable[[int], None], on_refused: Callable[[], None]):
        self.limit = limit
        self.open = 0
        self._on_count, self._on_refused = on_count, on_refused

    def protocol(self, make: Callable[[], Any]) -> Any:
        if self.open >= self.limit:
            self._on_refused()
            return _Refuse()
        return _Counted(self, make())

    def _moved(self, delta: int) -> None:
        self.open += delta
        self._on_count(delta)


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _Counted:
    """aiohttp's protocol for one connection, counted while open (a plain object, so that every
    other call the transport makes reaches aiohttp's protocol)."""

    def __init__(self, limit: ConnectionLimit, inner: Any):
        self.limit, self.inner = limit, inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.limit._moved(1)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.limit._moved(-1)
        self.inner.connection_lost(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
