"""Exports and support bundles from the console, written by the code `fleetlog export`/`bundle`
use (common/export/) so a download and the CLI hold the same bytes for the same filters.

The file is written in a worker thread, page by page from the query engine (memory stays bounded
for millions of rows), into a temporary file under the collector's data_dir; the response then
streams that file and removes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from fleetlog.collector.identity import Caller
from fleetlog.collector.web.queries import raw_filters
from fleetlog.common.errors import UsageError
from fleetlog.common.event import FIELD_NAMES
from fleetlog.common.export.bundle import BundleStats, add_bytes, build_manifest, write_masked
from fleetlog.common.export.columns import TABLE_COLUMNS, parse_columns
from fleetlog.common.export.writers import EXPORTERS
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

if TYPE_CHECKING:
    from fleetlog.collector.app import CollectorApp

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
CHUNK = 256 * 1024


@dataclass
class _Origin:
    """What build_manifest reads of the CLI's connection: the collector's address."""

    address: str


class _NoProgress:
    def step(self) -> None:
        pass


def _temp_path(app: CollectorApp, suffix: str) -> str:
    handle, path = tempfile.mkstemp(prefix=".web-download.", suffix=suffix, dir=app.data_dir)
    os.close(handle)
    return path


def _all_events(app: CollectorApp, spec: Any) -> Any:
    for page in app.query.search(spec, order="asc", limit=0):
        yield from page


async def send_file(request: web.Request, path: str, filename: str, content_type: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": content_type, "Content-Length": str(os.path.getsize(path)),
        "Content-Disposition": f'attachment; filename="{filename}"'})
    await response.prepare(request)
    try:
        handle = await asyncio.to_thread(open, path, "rb")
        with handle:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                await response.write(chunk)
    finally:
        os.unlink(path)
    await response.write_eof()
    return response


async def export(request: web.Request, app: CollectorApp, caller: Caller, query: Mapping[str, str]) -> web.StreamResponse:
    fmt = query.get("format", "")
    if fmt not in EXPORTERS:
        raise UsageError(f"format: expected one of {', '.join(EXPORTERS)}, got {fmt!r}")
    raw = raw_filters(query, ("format", "columns"))
    try:
        columns = parse_columns(query.get("columns"), TABLE_COLUMNS if fmt == "pdf" else FIELD_NAMES)
    except UsageError as exc:
        raise UsageError(str(exc).replace("--columns", "columns")) from None
    spec = app.filter_spec(raw, caller)
    await app.record_search(caller, "export", raw, via="web")
    path = _temp_path(app, "." + fmt)
    described = " ".join(f"--{k.replace('_', '-')} {v!r}" for k, v in raw.items())

    def write() -> None:
        exporter = EXPORTERS[fmt](path, columns, filters=described, collector=app.config.node_name)
        for event in _all_events(app, spec):
            exporter.write(event)
        exporter.close()
    try:
        await asyncio.to_thread(write)
    except BaseException:
        os.unlink(path)
        raise
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H%M%S")
    return await send_file(request, path, f"fleetlog_export_{stamp}.{fmt}", CONTENT_TYPES[fmt])


async def bundle(request: web.Request, app: CollectorApp, caller: Caller, query: Mapping[str, str]) -> web.StreamResponse:
    """The support bundle `.tar.gz` of `fleetlog bundle --compress`: masked events, digests, the
    manifest and the collector's signed attestation of what it holds."""
    raw = raw_filters(query)
    spec = app.filter_spec(raw, caller)
    await app.record_search(caller, "bundle", raw, via="web")
    events_path, digests_path = _temp_path(app, ".events"), _temp_path(app, ".digests")
    target = _temp_path(app, ".tar.gz")
    stats = BundleStats()
    try:
        def write_events() -> str:
            with open(events_path, "w", encoding="utf-8") as out, open(digests_path, "w", encoding="ascii") as digests:
                write_masked(_all_events(app, spec), out, stats, _NoProgress(), digests)
            with open(digests_path, "rb") as digests:
                return hashlib.file_digest(digests, "sha256").hexdigest()
        digests_sha256 = await asyncio.to_thread(write_events)
        status = await app.status()
        evidence = await app.evidence(pb.EvidenceRequest(bundle_digests_sha256=digests_sha256,
                                                         bundle_events=stats.events))
        manifest = build_manifest(_Origin(f"{request.host} (web console)"), pb.Filters(**raw), stats, status, evidence)

        def write_tar() -> None:
            with tarfile.open(target, "w:gz") as tar:
                tar.add(events_path, arcname="events.jsonl")
                tar.add(digests_path, arcname="digests.txt")
                add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n")
                for index, pem in enumerate(evidence.public_keys_pem):
                    add_bytes(tar, "signing.pub" if index == 0 else f"signing-{index}.pub", pem.encode())
        await asyncio.to_thread(write_tar)
    except BaseException:
        os.unlink(target)
        raise
    finally:
        os.unlink(events_path)
        os.unlink(digests_path)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    return await send_file(request, target, f"fleetlog_bundle_{stamp}.tar.gz", "application/gzip")
