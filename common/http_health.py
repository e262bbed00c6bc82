"""The daemons' HTTP endpoint: Prometheus text on /metrics, /healthz (alive), /readyz (ready).

An asyncio server on its own thread and event loop: scrapes stay off the loop that moves
events, and a connection costs a few kilobytes instead of a thread, so a thousand idle or slow
clients neither exhaust threads nor delay a scrape. Each connection gets one request (a
request head of at most 8 KiB, read within HEAD_TIMEOUT) and is closed after the answer;
beyond MAX_CONNECTIONS open at once, new ones are closed at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from fleetlog.common.errors import ConfigError

log = logging.getLogger("fleetlog.http")

HEAD_TIMEOUT = 10.0          # a client that has not sent its request head by then is dropped
WRITE_TIMEOUT = 10.0         # a client that does not read its answer by then is dropped
MAX_HEAD_BYTES = 8192
MAX_CONNECTIONS = 4096

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class MetricsConfig:
    """`[metrics]` of either daemon: where this endpoint listens. No class default: each daemon's
    config gives its own port as the field default (agent 9434, collector 9433)."""

    listen: str


def parse_listen(value: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        raise ConfigError(f"{key}: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class HealthServer:
    def __init__(self, listen: str, registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]]):
        host, port = parse_listen(listen, "metrics.listen")
        self.registry, self.ready = registry, ready
        try:
            # Bound here, not in start(): a taken port is a configuration error at start-up.
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._sock = socket.create_server((host, port), family=family, backlog=1024)
        except OSError as exc:
            raise ConfigError(f"metrics.listen: cannot listen on {listen}: {exc.strerror}") from None
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-health", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)
        else:
            self._sock.close()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            server = loop.run_until_complete(asyncio.start_server(self._serve, sock=self._sock,
                                                                  limit=MAX_HEAD_BYTES))
            self._started.set()
            loop.run_forever()
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
        finally:
            self._started.set()
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.connections > MAX_CONNECTIONS:
                return
            try:
                async with asyncio.timeout(HEAD_TIMEOUT):   # not wait_for: it can drop a cancellation
                    head = await reader.readuntil(b"\r\n\r\n")
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return   # idle, slow, oversized or gone: nothing worth answering
            try:
                code, body, ctype = self._answer(head)
            except Exception as exc:  # noqa: BLE001 — a failing metric callback must not end the server
                log.error("answering %r failed: %s", head.split(b"\r\n", 1)[0][:100], exc)
                code, body, ctype = 500, b"internal error\n", "text/plain; charset=utf-8"
            writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % (code, _REASONS[code].encode(), ctype.encode(), len(body)))
            if not head.startswith(b"HEAD "):
                writer.write(body)
            async with asyncio.timeout(WRITE_TIMEOUT):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass   # a client that stopped reading; the answer was for it alone
        finally:
            self.connections -= 1
            writer.close()

    def _answer(self, head: bytes) -> tuple[int, bytes, str]:
        text = "text/plain; charset=utf-8"
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return 400, b"bad request\n", text
        if parts[0] not in (b"GET", b"HEAD"):
            return 405, b"method not allowed\n", text
        path = parts[1].split(b"?", 1)[0]
        if path == b"/metrics":
            return 200, generate_latest(self.registry), CONTENT_TYPE_LATEST
        if path == b"/healthz":
            return 200, b"ok\n", text
        if path == b"/readyz":
            ok, why = self.ready()
            return (200 if ok else 503), (why or ("ready" if ok else "not ready")).encode() + b"\n", text
        return 404, b"not found\n", text
