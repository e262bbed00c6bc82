"""A TCP proxy for fault tests: forwards 127.0.0.1:<port> to a target and, every `cut_every`
seconds, closes every connection it carries (both sides, abruptly), like a flaky network path.

It runs its own asyncio loop in a thread of the test process; `stop()` ends it.
"""

from __future__ import annotations

import asyncio
import threading

from tests.harness import free_port


class CuttingProxy:
    def __init__(self, target_port: int, cut_every: float):
        self.port = free_port()
        self.target_port = target_port
        self.cut_every = cut_every
        self.cuts = 0          # times at least one open connection was cut
        self.connections = 0   # connections accepted
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cutting-proxy", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> CuttingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("proxy did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        cutter = self._loop.create_task(self._cut_periodically())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            cutter.cancel()
            server.close()
            self._cut()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((client_writer, upstream_writer))
        await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))
        for writer in (client_writer, upstream_writer):
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.transport.abort()

    async def _cut_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.cut_every)
            if self._writers:
                self.cuts += 1
                self._cut()

    def _cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
