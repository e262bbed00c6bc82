"""`fleetlog export` and `fleetlog bundle`: stream matching events from the collector into a file.

Both read the collector's Search stream page by page and write each event as it arrives, so
memory stays bounded whatever the row count. The output is written under a temporary name and
renamed when complete: a failed export never leaves a half file under the requested name.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import re
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from typing import Any, Self, TextIO

from fleetlog.cli.client import Connection
from fleetlog.cli.filters import filter_options, filters_from_args
from fleetlog.common.errors import FleetlogError, UsageError
from fleetlog.common.event import FIELD_NAMES
from fleetlog.common.export.bundle import BundleStats, Digests, add_bytes, build_manifest, write_lines
from fleetlog.common.export.columns import TABLE_COLUMNS, parse_columns
from fleetlog.common.export.writers import EXPORTERS, PDF_MAX_ROWS, PDF_TOO_MANY_ROWS
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    export = subparsers.add_parser(
        "export", parents=parents + [filter_options()], help="export matching events to a file",
        description="Export matching events, oldest first, to csv, xlsx, pdf or jsonl.")
    export.add_argument("--format", choices=tuple(EXPORTERS), required=True)
    export.add_argument("--out", required=True, metavar="FILE", help="file to write")
    export.add_argument("--columns", metavar="a,b,...",
                        help="columns to export (default: all fields; pdf: time,level,host,request_id,user,message)")
    export.add_argument("--limit", type=int, default=0, help="at most N events (default 0 = all)")
    export.set_defaults(handler=run_export)

    bundle = subparsers.add_parser(
        "bundle", parents=parents + [filter_options()], help="logs for support, secrets masked",
        description="Matching events with secrets masked: JSON lines to stdout or --out-file, or with "
                    "--compress a .tar.gz holding events.jsonl, manifest.json and the public key.")
    bundle.add_argument("--date-from", metavar="D", default="", help="from this time or date (like --since)")
    bundle.add_argument("--date-to", metavar="D", default="",
                        help="up to this time; a date alone includes that whole day")
    bundle.add_argument("--log-level", metavar="L,..", default="", help="exactly these levels (like --level)")
    bundle.add_argument("--out-file", metavar="F", help="write here instead of stdout")
    bundle.add_argument("--compress", action="store_true",
                        help="write a .tar.gz (default name fleetlog_bundle_YYYY-MM-DD-HHMMSS.tar.gz)")
    bundle.set_defaults(handler=run_bundle)


# -- shared -------------------------------------------------------------------------------------

def describe_filters(filters: pb.Filters) -> str:
    parts = [f"--{f.name.replace('_', '-')} {getattr(filters, f.name)!r}"
             for f in pb.Filters.DESCRIPTOR.fields if getattr(filters, f.name)]
    return " ".join(parts)


class Progress:
    """`exported N events (R/s)` on stderr, redrawn at most 5 times a second, only on a terminal."""

    def __init__(self, what: str, stream: TextIO = sys.stderr):
        self.what = what
        self.stream = stream
        self.enabled = stream.isatty()
        self.count = 0
        self.started = self.last = time.monotonic()
        self.spin = 0

    def step(self) -> None:
        self.count += 1
        if self.enabled and self.count % 256 == 0:
            now = time.monotonic()
            if now - self.last >= 0.2:
                self.last = now
                self._draw(now)

    def _draw(self, now: float, final: bool = False) -> None:
        rate = self.count / max(now - self.started, 1e-6)
        self.spin = (self.spin + 1) % 20
        bar = "#" * 20 if final else "".join("#" if (i - self.spin) % 20 < 5 else "." for i in range(20))
        self.stream.write(f"\r{self.what} [{bar}] {self.count:,} events  {rate:,.0f}/s ")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self._draw(time.monotonic(), final=True)
            self.stream.write("\n")
            self.stream.flush()


class AtomicFile:
    """A temporary path beside the target, renamed onto it only when the writer finished: as a
    context manager, when its block ends without an exception (else the temporary is removed)."""

    def __init__(self, target: str):
        self.target = pathlib.Path(target)
        folder = self.target.parent if str(self.target.parent) else pathlib.Path(".")
        if not folder.is_dir():
            raise UsageError(f"--out: directory {folder} does not exist")
        handle, self.temp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".partial", dir=folder)
        os.close(handle)

    def commit(self) -> None:
        os.replace(self.temp, self.target)

    def discard(self) -> None:
        try:
            os.unlink(self.temp)
        except OSError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


# -- export -------------------------------------------------------------------------------------

def run_export(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UsageError("--limit: must be 0 (all) or a positive number")
    columns = parse_columns(args.columns, TABLE_COLUMNS if args.format == "pdf" else FIELD_NAMES)
    conn = Connection.from_args(args)
    filters = filters_from_args(args)
    limit = args.limit
    if args.format == "pdf" and not 0 < limit <= PDF_MAX_ROWS:
        limit = PDF_MAX_ROWS + 1   # one more tells that more match
    request = pb.SearchRequest(filters=filters, limit=limit, order="asc", purpose="export")
    progress = Progress(f"export {args.format}")
    with AtomicFile(args.out) as out:
        events: Iterator[dict[str, Any]] = conn.search(request)
        if args.format == "pdf":
            # Counted before a page is rendered: refused at once rather than after minutes.
            held = list(events)
            if len(held) > PDF_MAX_ROWS:
                raise UsageError(PDF_TOO_MANY_ROWS)
            events = iter(held)
        first = next(events, None)   # the collector validates the filters before any file is written
        exporter = EXPORTERS[args.format](out.temp, columns, filters=describe_filters(filters),
                                          collector=conn.address)
        if first is not None:
            exporter.write(first)
            progress.step()
            for event in events:
                exporter.write(event)
                progress.step()
        exporter.close()
    progress.done()
    sys.stderr.write(f"exported {progress.count} events to {args.out}\n")
    return 0


# -- bundle -------------------------------------------------------------------------------------

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def bundle_filters(args: argparse.Namespace) -> pb.Filters:
    filters = filters_from_args(args)
    for flag, value, field in (("--date-from", args.date_from, "since"), ("--date-to", args.date_to, "until"),
                               ("--log-level", args.log_level, "level")):
        if not value:
            continue
        if getattr(filters, field):
            raise UsageError(f"{flag} and --{field} name the same filter; give one of them")
        if field == "until" and _DATE_ONLY.match(value.strip()):
            value = value.strip() + "T23:59:59.999999Z"   # a date alone: the whole day
        setattr(filters, field, value)
    return filters


class BundleStream:
    """The lines of a Bundle stream as (event, line, masked), and the evidence of its last page."""

    def __init__(self, pages: Iterator[pb.BundlePage]):
        self.pages = pages
        self.evidence: pb.EvidenceReply | None = None

    def __iter__(self) -> Iterator[tuple[dict[str, Any], str, bool]]:
        for page in self.pages:
            for line, masked in zip(page.lines, page.masked, strict=True):
                yield json.loads(line), line, masked
            if page.HasField("evidence"):
                self.evidence = page.evidence

    def attested(self, digests: Digests) -> pb.EvidenceReply:
        """The evidence, once its attestation is found to sign exactly the lines received."""
        if self.evidence is None or not self.evidence.bundle_attestation_json:
            raise FleetlogError("the collector's bundle ended without its signed attestation")
        signed = json.loads(self.evidence.bundle_attestation_json)
        if (signed.get("digests_sha256"), signed.get("events")) != (digests.hexdigest(), digests.lines):
            raise FleetlogError("the collector's attestation does not match the events received")
        return self.evidence


def run_bundle(args: argparse.Namespace) -> int:
    conn = Connection.from_args(args)
    filters = bundle_filters(args)
    request = pb.SearchRequest(filters=filters, limit=0, order="asc", purpose="bundle")
    stats = BundleStats()
    progress = Progress("bundle")
    if not args.compress:
        if not args.out_file:
            write_lines(BundleStream(conn.bundle(request)), sys.stdout, stats, progress)
            return 0
        with AtomicFile(args.out_file) as out, open(out.temp, "w", encoding="utf-8") as handle:
            write_lines(BundleStream(conn.bundle(request)), handle, stats, progress)
        progress.done()
        sys.stderr.write(f"bundled {stats.events} events ({stats.masked} with secrets masked) to {args.out_file}\n")
        return 0

    target = args.out_file or dt.datetime.now().strftime("fleetlog_bundle_%Y-%m-%d-%H%M%S.tar.gz")
    out = AtomicFile(target)
    events_file = AtomicFile(target + ".events")
    digests_file = AtomicFile(target + ".digests")
    try:
        with out:
            # The collector writes the lines and signs the digests it computed over them; the
            # same digests computed here must match, or the bundle is not written.
            stream = BundleStream(conn.bundle(request))
            with open(events_file.temp, "w", encoding="utf-8") as handle, \
                    open(digests_file.temp, "w", encoding="ascii") as digests_out:
                evidence = stream.attested(write_lines(stream, handle, stats, progress, digests_out))
            with conn.channel() as channel:
                status = conn.query(channel).Status(pb.StatusRequest(), metadata=conn.metadata)
            manifest = build_manifest(conn, filters, stats, status, evidence)
            with tarfile.open(out.temp, "w:gz") as tar:
                tar.add(events_file.temp, arcname="events.jsonl")
                tar.add(digests_file.temp, arcname="digests.txt")
                add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n")
                for index, pem in enumerate(evidence.public_keys_pem):
                    add_bytes(tar, "signing.pub" if index == 0 else f"signing-{index}.pub", pem.encode())
    finally:
        events_file.discard()
        digests_file.discard()
    progress.done()
    sys.stderr.write(f"bundled {stats.events} events ({stats.masked} with secrets masked) to {target}\n")
    return 0
