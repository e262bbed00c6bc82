"""`fleetlog note` and `fleetlog status`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from google.protobuf.json_format import MessageToDict

from fleetlog.cli.client import Connection
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.timefmt import format_us


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    note = subparsers.add_parser("note", parents=parents, help="add an informative note to the event log")
    note.add_argument("text", metavar="TEXT")
    note.add_argument("--namespace", default="", metavar="N",
                      help="the note's namespace, one you hold (default: your only one, or default)")
    note.set_defaults(handler=run_note)
    status = subparsers.add_parser("status", parents=parents, help="collector health")
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(handler=run_status)


def run_note(args: argparse.Namespace) -> int:
    conn = Connection.from_args(args)
    with conn.channel() as channel:
        reply = conn.admin(channel).Note(pb.NoteRequest(text=args.text, namespace=args.namespace), metadata=conn.metadata)
    print(f"note stored as seq {reply.seq} (id {reply.id})")
    return 0


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "never"


def run_status(args: argparse.Namespace) -> int:
    conn = Connection.from_args(args)
    with conn.channel() as channel:
        status = conn.query(channel).Status(pb.StatusRequest(), metadata=conn.metadata)
    if args.format == "json":
        print(json.dumps(MessageToDict(status, preserving_proto_field_name=True), indent=2))
        return 0
    print(f"collector {status.collector}  version {status.version}  up {status.uptime_seconds:.0f}s")
    if status.scoped:
        print("storage   (only admin and auditor see the whole store; nodes of your namespaces below)")
    else:
        print(f"storage   {status.storage_bytes / 1048576:.1f} MiB, {status.event_count} events, "
              f"last seq {status.last_seq}")
    print(f"next purge {_when(status.next_purge)}")
    if status.collectors:   # a cluster sharing one store: every collector, then every node
        print(f"{'COLLECTOR':<20} {'ADDRESS':<22} {'VERSION':<10} {'LAST HEARTBEAT':<20} ALIVE")
        for member in status.collectors:
            print(f"{member.name:<20} {member.address:<22} {member.version:<10} {_when(member.last_heartbeat):<20} "
                  f"{'yes' if member.alive else 'no'}")
        print(f"{'NODE':<20} {'IP':<16} {'COLLECTOR':<20} {'CONNECTED':<9} {'LAST SEEN':<20} {'EVENTS':>10} "
              f"{'LAG':>6} SKEW")
    else:
        print(f"{'NODE':<20} {'IP':<16} {'CONNECTED':<9} {'LAST SEEN':<20} {'EVENTS':>10} {'LAG':>6} SKEW")
    for node in status.nodes:
        warn = "  WARNING: clock off by more than 1s" if abs(node.clock_skew_seconds) > 1 else ""
        via = f"{node.collector:<20} " if status.collectors else ""
        print(f"{node.name:<20} {node.ip:<16} {via}{'yes' if node.connected else 'no':<9} {_when(node.last_seen):<20} "
              f"{node.events:>10} {node.lag_seconds:>5.1f}s {node.clock_skew_seconds:+.3f}s{warn}")
    for fwd in status.forwarders:
        last = (f"; last error at {format_us(fwd.last_error_time_us)}: {fwd.last_error}"
                if fwd.last_error_time_us and not fwd.state.startswith("failing") else "")
        print(f"forwarder {fwd.name}: {fwd.state}, lag {fwd.lag_events} events{last}")
    _print_alerting(status)
    return 0


def _print_alerting(status: pb.StatusReply) -> None:
    """The alert evaluator, each Alertmanager, and the alerts firing."""
    if not status.alerting_state:
        return
    print(f"alerting: {status.alerting_state}, {len(status.alerts)} firing")
    for manager in status.alertmanagers:
        state = (f"failing since {format_us(int(manager.last_error_time * 1e6))}: {manager.last_error}"
                 if manager.last_error else "ok")
        print(f"alertmanager {manager.url}: {state}")
    for alert in status.alerts:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        print(f"ALERT {alert.labels.get('alertname', '')} firing since {_when(alert.firing_since)}: "
              f"{alert.summary} ({alert.count} events) [{labels}]")
