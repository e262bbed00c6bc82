"""The filter flags shared by search, trace, export and bundle (SPEC §1 "Filters")."""

from __future__ import annotations

import argparse

from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

FILTER_FLAGS = (
    ("--since", "since", "T", "RFC 3339, a date (2025-12-01) or relative (15m, 2h, 7d)"),
    ("--until", "until", "T", "RFC 3339, a date or relative"),
    ("--date", "date", "PREFIX", "time prefix: 2025-12-01, 2025-12, '2025-12-01 14:3'"),
    ("--min-level", "min_level", "L", "this level and everything more severe"),
    ("--level", "level", "L1,L2", "exactly these levels"),
    ("--request-id", "request_id", "X", "exact; X* = starts with X"),
    ("--user", "user", "U", "exact, u* wildcard, or a comma list"),
    ("--host", "host", "H", "origin node name or IP; wildcard; comma list"),
    ("--message", "message", "M", 'keywords, all must occur; \'"exact phrase"\' in double quotes'),
    ("--message-regex", "message_regex", "R", "regular expression on the message"),
    ("--log-type", "log_type", "T", "exact, wildcard, comma list"),
    ("--source", "source", "S", "exact, wildcard, comma list"),
    ("--namespace", "namespace", "N", "exact, wildcard, comma list"),
    ("--app", "app", "A", "exact, wildcard, comma list"),
    ("--action", "action", "A", "exact, wildcard, comma list"),
    ("--where", "where", "'f=pat; ...'", "audit-search syntax: % any run of characters, ; separates"),
)


def filter_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("filters (combined with AND)")
    for flag, dest, metavar, help_text in FILTER_FLAGS:
        group.add_argument(flag, dest=f"filter_{dest}", metavar=metavar, help=help_text, default="")
    return parent


def filters_from_args(args: argparse.Namespace) -> pb.Filters:
    return pb.Filters(**{dest: getattr(args, f"filter_{dest}", "") or "" for _, dest, _, _ in FILTER_FLAGS})
