"""The filter flags of search, trace, export and bundle, from the shared table (common/filter_flags.py)."""

from __future__ import annotations

import argparse

from fleetlog.common.filter_flags import FILTER_FLAGS
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb


def filter_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("filters (combined with AND)")
    for flag, dest, metavar, help_text in FILTER_FLAGS:
        # argparse formats help with %: the shared table's texts are plain (the API document shows them too).
        group.add_argument(flag, dest=f"filter_{dest}", metavar=metavar, help=help_text.replace("%", "%%"), default="")
    return parent


def filters_from_args(args: argparse.Namespace) -> pb.Filters:
    return pb.Filters(**{dest: getattr(args, f"filter_{dest}", "") or "" for _, dest, _, _ in FILTER_FLAGS})
