"""Exports and support bundles from the console, written by the code `fleetlog export`/`bundle`
use (common/export/) so a download and the CLI hold the same bytes for the same filters.

The file is written on the exports' own threads, page by page from the query engine (memory stays
bounded for millions of rows), into a temporary file under the collector's data_dir; the response
then streams that file and removes it. collector/web/export_jobs.py bounds them: one per user at
a time, stopped when the client goes away, refused on a nearly full disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import tarfile
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from fleetlog.collector.identity import Caller
from fleetlog.collector.web.export_jobs import EXPORTS_KEY, ClientGone, ExportJob, ExportJobs
from fleetlog.collector.web.queries import raw_filters
from fleetlog.common.errors import UsageError
from fleetlog.common.event import FIELD_NAMES
from fleetlog.common.export.bundle import BundleStats, add_bytes, build_manifest, write_lines
from fleetlog.common.export.columns import TABLE_COLUMNS, parse_columns
from fleetlog.common.export.writers import EXPORTERS, PDF_MAX_ROWS, PDF_TOO_MANY_ROWS
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

if TYPE_CHECKING:
    from fleetlog.collector.running import RunningCollector

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
CHUNK = 256 * 1024
log = logging.getLogger("fleetlog.collector.web")


@dataclass
class _Origin:
    """What build_manifest reads of the CLI's connection: the collector's address."""

    address: str


class _NoProgress:
    def step(self) -> None:
        pass


def _temp_path(collector: RunningCollector, suffix: str) -> str:
    handle, path = tempfile.mkstemp(prefix=".web-download.", suffix=suffix, dir=collector.data_dir)
    os.close(handle)
    return path


def _all_events(collector: RunningCollector, spec: Any, limit: int = 0) -> Iterator[dict[str, Any]]:
    for page in collector.search(spec, order="asc", limit=limit):
        yield from page


async def send_file(request: web.Request, path: str, filename: str, content_type: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": content_type, "Content-Length": str(os.path.getsize(path)),
        "Content-Disposition": f'attachment; filename="{filename}"'})
    try:
        await response.prepare(request)
        handle = await asyncio.to_thread(open, path, "rb")
        with handle:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                await response.write(chunk)
    finally:
        os.unlink(path)
    await response.write_eof()
    return response


# A written download: its temporary path, the file name offered, its content type.
Written = tuple[str, str, str]


async def _bounded(request: web.Request, collector: RunningCollector, caller: Caller, what: str,
                   produce: Callable[[ExportJobs, ExportJob], Awaitable[Written]]) -> web.StreamResponse:
    """`produce` the file as one of the caller's export jobs (collector/web/export_jobs.py):
    refused (429, 507) when it may not start, stopped when the client goes away; then send it.
    The job ends before the first byte is sent, so a client that has the whole file may start
    its next export at once."""
    jobs = request.app[EXPORTS_KEY]
    job = jobs.start(caller, collector.data_dir)
    try:
        written = await produce(jobs, job)
    except ClientGone:
        log.info("console: %s for %s stopped after %d events: the client went away", what, caller.name, job.rows)
        return web.Response(status=499, text="the client closed the request")
    finally:
        jobs.finish(job)
    return await send_file(request, *written)


def _count_pdf_rows(collector: RunningCollector, spec: Any, job: ExportJob) -> None:
    """Refuse a PDF over PDF_MAX_ROWS before rendering a page (reading is cheap, rendering not)."""
    if sum(1 for _ in job.each(_all_events(collector, spec, PDF_MAX_ROWS + 1))) > PDF_MAX_ROWS:
        raise UsageError(PDF_TOO_MANY_ROWS)
    job.rows = 0


async def export(request: web.Request, collector: RunningCollector, caller: Caller, query: Mapping[str, str]) -> web.StreamResponse:
    fmt = query.get("format", "")
    if fmt not in EXPORTERS:
        raise UsageError(f"format: expected one of {', '.join(EXPORTERS)}, got {fmt!r}")
    raw = raw_filters(query, ("format", "columns"))
    try:
        columns = parse_columns(query.get("columns"), TABLE_COLUMNS if fmt == "pdf" else FIELD_NAMES)
    except UsageError as exc:
        raise UsageError(str(exc).replace("--columns", "columns")) from None
    spec = collector.filter_spec(raw, caller)
    described = " ".join(f"--{k.replace('_', '-')} {v!r}" for k, v in raw.items())

    async def produce(jobs: ExportJobs, job: ExportJob) -> Written:
        await collector.record_search(caller, "export", raw, via="web")
        path = _temp_path(collector, "." + fmt)

        def write() -> None:
            if fmt == "pdf":
                _count_pdf_rows(collector, spec, job)
            exporter = EXPORTERS[fmt](path, columns, filters=described, collector=collector.node_name)
            for event in job.each(_all_events(collector, spec)):
                exporter.write(event)
            exporter.close()
        try:
            await jobs.run(request, job, write)
        except BaseException:
            os.unlink(path)
            raise
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H%M%S")
        return path, f"fleetlog_export_{stamp}.{fmt}", CONTENT_TYPES[fmt]
    return await _bounded(request, collector, caller, f"export {fmt}", produce)


async def bundle(request: web.Request, collector: RunningCollector, caller: Caller, query: Mapping[str, str]) -> web.StreamResponse:
    """The support bundle `.tar.gz` of `fleetlog bundle --compress`: masked events, digests, the
    manifest and the collector's signed attestation of what it holds."""
    raw = raw_filters(query)
    spec = collector.filter_spec(raw, caller)

    async def produce(jobs: ExportJobs, job: ExportJob) -> Written:
        await collector.record_search(caller, "bundle", raw, via="web")
        events_path, digests_path = _temp_path(collector, ".events"), _temp_path(collector, ".digests")
        target = _temp_path(collector, ".tar.gz")
        stats = BundleStats()
        # The collector masks the events and signs the digests it computed itself (collector/bundles.py).
        produced = collector.bundle(spec, caller, via="web")
        try:
            def write_events() -> None:
                with open(events_path, "w", encoding="utf-8") as out, \
                        open(digests_path, "w", encoding="ascii") as digests:
                    lines = job.each(line for page in produced.pages() for line in page)
                    write_lines(lines, out, stats, _NoProgress(), digests)
            await jobs.run(request, job, write_events)
            status = await collector.status()
            evidence = await produced.attest()
            manifest = build_manifest(_Origin(f"{request.host} (web console)"), pb.Filters(**raw), stats, status,
                                      evidence)

            def write_tar() -> None:
                with tarfile.open(target, "w:gz") as tar:
                    tar.add(events_path, arcname="events.jsonl")
                    tar.add(digests_path, arcname="digests.txt")
                    add_bytes(tar, "manifest.json",
                              json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n")
                    for index, pem in enumerate(evidence.public_keys_pem):
                        add_bytes(tar, "signing.pub" if index == 0 else f"signing-{index}.pub", pem.encode())
            await jobs.run(request, job, write_tar)
        except BaseException:
            os.unlink(target)
            raise
        finally:
            os.unlink(events_path)
            os.unlink(digests_path)
        stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
        return target, f"fleetlog_bundle_{stamp}.tar.gz", "application/gzip"
    return await _bounded(request, collector, caller, "bundle", produce)
