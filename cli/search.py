"""`fleetlog search` and `fleetlog trace`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from fleetlog.cli.client import Connection
from fleetlog.cli.filters import filter_options, filters_from_args
from fleetlog.cli.output import CsvWriter, print_table, write_json_lines
from fleetlog.common.errors import AuthError, FleetlogError, UsageError
from fleetlog.common.event import FIELD_NAMES
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    search = subparsers.add_parser("search", parents=parents + [filter_options()], help="find events",
                                   description="Find events. Table: newest first; json/csv: oldest first.")
    search.add_argument("--format", choices=("table", "json", "csv"), default="table")
    search.add_argument("--limit", type=int, default=1000, help="at most N events (0 = all; default 1000)")
    search.add_argument("--order", choices=("asc", "desc"), help="oldest (asc) or newest (desc) first")
    search.add_argument("--follow", action="store_true", help="keep streaming new matches")
    search.set_defaults(handler=run_search)

    trace = subparsers.add_parser("trace", parents=parents, help="every event of one request, oldest first")
    trace.add_argument("request_id", metavar="REQUEST_ID")
    trace.add_argument("--format", choices=("table", "json", "csv"), default="table")
    trace.set_defaults(handler=run_trace)


def _emit(events: Iterator[dict[str, Any]], fmt: str, reverse_for_table: bool = False) -> int:
    if fmt == "table":
        rows = list(events)
        print_table(rows)
        return len(rows)
    if fmt == "json":
        return write_json_lines(events)
    writer = CsvWriter(sys.stdout, FIELD_NAMES)
    count = 0
    for event in events:
        writer.write(event)
        count += 1
    return count


def run_search(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UsageError("--limit: must be 0 (all) or a positive number")
    conn = Connection.from_args(args)
    filters = filters_from_args(args)
    order = args.order or ("desc" if args.format == "table" else "asc")
    request = pb.SearchRequest(filters=filters, limit=args.limit, order=order, purpose="search")
    if args.follow:
        return _follow(conn, filters, args.format)
    _emit(conn.search(request), args.format)
    return 0


def run_trace(args: argparse.Namespace) -> int:
    conn = Connection.from_args(args)
    request = pb.SearchRequest(filters=pb.Filters(request_id=args.request_id), limit=0, order="asc",
                               purpose="trace")
    _emit(conn.search(request), args.format)
    return 0


def _follow(conn: Connection, filters: pb.Filters, fmt: str) -> int:
    """Stream new matches; when the stream breaks (collector restart, network), reconnect with
    backoff and resume after the last seq the collector confirmed, so nothing is missed or repeated."""
    last_seq = 0
    cursor_json = ""     # the cursor of a store of several chains (a cluster); see SearchRequest
    writer = CsvWriter(sys.stdout, FIELD_NAMES) if fmt == "csv" else None
    delay = 0.2
    while True:
        try:
            with conn.channel() as channel:
                request = pb.SearchRequest(filters=filters, after_seq=last_seq, purpose="follow",
                                           cursor_json=cursor_json)
                for page in conn.query(channel).Follow(request, metadata=conn.metadata):
                    delay = 0.2
                    last_seq = max(last_seq, page.last_seq)
                    cursor_json = page.cursor_json or cursor_json
                    for text in page.events_json:
                        event = json.loads(text)
                        if writer:
                            writer.write(event)
                        elif fmt == "json":
                            sys.stdout.write(text + "\n")
                        else:
                            sys.stdout.write(f"{event['time']}  {event['level']:<8} {event['host']}  "
                                             f"{event.get('request_id') or '-'}  {event.get('user') or '-'}  "
                                             f"{event['message']}\n")
                    sys.stdout.flush()
            reason = "the collector ended the stream"
        except (UsageError, AuthError):
            raise
        except FleetlogError as exc:
            reason = str(exc)
        sys.stderr.write(f"fleetlog search --follow: {reason}; reconnecting\n")
        sys.stderr.flush()
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
