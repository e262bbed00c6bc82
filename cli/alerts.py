"""`fleetlog alert list|add|edit|rm`: alert rules managed live (contract §9, §11), through the
collector's gRPC `Admin/Settings` call as the forwarder verbs are. A rule's keys are
collector.toml's `[[alerting.rules]]` keys, given as KEY=VALUE with TOML values (`threshold=5`,
`window=10m`, `filters={action="login.failed"}`, `group_by=["user"]`); the collector checks them
with the rule parser collector.toml's rules go through."""

from __future__ import annotations

import argparse
from typing import Any

from fleetlog.cli.settings import (
    _changed,
    _print_json,
    _table,
    add_and_edit_verbs,
    edited,
    key_values,
    settings_request,
)


def _filters(rule: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted((rule.get("filters") or {}).items())) or "-"


def run_alert_list(args: argparse.Namespace) -> int:
    answer = settings_request(args, "list", "alerts")
    if args.format == "json":
        _print_json(answer)
        return 0
    rows = [[a["name"], _filters(a), ",".join(a.get("group_by") or ()) or "-",
             f"{a['threshold']} in {a['window']} for {a.get('for', '0s')}", a.get("severity", ""),
             str(a["firing"]), a["source"], _changed(a)] for a in answer["alerts"]]
    _table(rows, ["NAME", "FILTERS", "GROUP_BY", "THRESHOLD", "SEVERITY", "FIRING", "SOURCE", "CHANGED"])
    return 0


def run_alert_add(args: argparse.Namespace) -> int:
    answer = settings_request(args, "create", "alerts", args.name, {"name": args.name, **key_values(args.settings)})
    print(f"alert rule {answer['name']} added")
    return 0


def run_alert_edit(args: argparse.Namespace) -> int:
    answer = settings_request(args, "update", "alerts", args.name, edited(args, "alerts"))
    print(f"alert rule {answer['name']} changed")
    return 0


def run_alert_rm(args: argparse.Namespace) -> int:
    print(f"alert rule {settings_request(args, 'delete', 'alerts', args.name)['deleted']} removed")
    return 0


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    alert = subparsers.add_parser("alert", parents=parents, help="alert rules managed live")
    verbs = alert.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(alert))
    listing = verbs.add_parser("list", parents=parents, help="every alert rule, and whether it fires")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=run_alert_list)
    add_and_edit_verbs(verbs, parents, "rule", "collector.toml's [[alerting.rules]] keys", run_alert_add,
                       run_alert_edit)
    remove = verbs.add_parser("rm", parents=parents, help="remove a rule made here")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=run_alert_rm)
