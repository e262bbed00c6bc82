"""The bounds on the console's exports and bundle downloads.

An export reads every matching event and writes a file (a PDF of 10,000 rows takes some 20 s),
so without bounds a few readers could take the worker threads that search, status and retention
share, fill the disk, or keep a server busy for a client long gone. Here:

- exports run on their own `EXPORT_WORKERS` threads, never on asyncio's default pool;
- one running export per user (per token, or per address on an open console): another gets 429;
- the work stops at the next event once the client has closed its connection;
- no export starts while data_dir has less than `[web] export_min_free` free (507).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aiohttp import web

from fleetlog.collector.identity import Caller
from fleetlog.common.units import format_size

T = TypeVar("T")

EXPORT_WORKERS = 2
DISCONNECT_POLL_SECONDS = 0.25


class ClientGone(Exception):
    """The client closed its connection: the export stopped."""


class ExportJob:
    """One running export: its owner, the events it has gone through, and its stop flag."""

    def __init__(self, owner: tuple[str, str]):
        self.owner = owner
        self.rows = 0
        self.stop = threading.Event()

    def each(self, items: Iterable[T]) -> Iterator[T]:
        """`items`, counted, until the export is told to stop (then ClientGone)."""
        for item in items:
            if self.stop.is_set():
                raise ClientGone()
            self.rows += 1
            yield item


def _owner(caller: Caller) -> tuple[str, str]:
    # Without credentials every peer is the same trusted caller: tell them apart by address.
    return (caller.how, caller.ip if caller.how == "trusted" else caller.name)


def _refusal(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    """The API's error shape ({"error": ...}); aiohttp answers with it as it is raised."""
    return kind(text=json.dumps({"error": message}), content_type="application/json")


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class ExportJobs:
    def __init__(self, min_free: int):
        self.min_free = min_free
        self._executor = ThreadPoolExecutor(EXPORT_WORKERS, thread_name_prefix="fleetlog-export")
        self._running: dict[tuple[str, str], ExportJob] = {}

    def start(self, caller: Caller, folder: str) -> ExportJob:
        """A job for `caller`, who has none running, with room in `folder`; else ExportRefused.
        Give it back with `finish`."""
        if _owner(caller) in self._running:
            raise _refusal(web.HTTPTooManyRequests, f"an export or bundle of {caller.name} is still running; "
                           "one at a time per user: wait for it to finish (or cancel it) and try again")
        free = shutil.disk_usage(folder).free
        if free < self.min_free:
            raise _refusal(web.HTTPInsufficientStorage, f"only {free // 2**20:,} MiB free in the collector's data_dir, "
                           f"less than [web] export_min_free ({format_size(self.min_free)}): no export now")
        job = self._running[_owner(caller)] = ExportJob(_owner(caller))
        return job

    def finish(self, job: ExportJob) -> None:
        job.stop.set()
        self._running.pop(job.owner, None)

    async def run(self, request: web.Request, job: ExportJob, work: Callable[[], T]) -> T:
        """`work()` on the export threads. When the client goes away meanwhile, the job is told
        to stop; `work` then raises ClientGone at its next event."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=DISCONNECT_POLL_SECONDS)
                if not future.done() and _client_gone(request):
                    job.stop.set()
            return future.result()
        except asyncio.CancelledError:
            job.stop.set()   # the console is stopping: the thread ends at its next event
            raise

    def close(self) -> None:
        for job in self._running.values():
            job.stop.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


EXPORTS_KEY = web.AppKey("exports", ExportJobs)


def install(application: web.Application, min_free: int) -> None:
    """The console's export jobs, their threads stopped with the console."""
    jobs = application[EXPORTS_KEY] = ExportJobs(min_free)

    async def close(_: web.Application) -> None:
        jobs.close()
    application.on_cleanup.append(close)
