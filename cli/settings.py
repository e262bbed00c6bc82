"""`fleetlog forwarder list|add|edit|rm|test`, `fleetlog namespace list|set`,
`fleetlog token list|create|revoke`: the settings managed live (contract §9), through the
collector's gRPC `Admin/Settings` call, so they work without a console. The collector answers as
its API does; its audit events say `via = "cli"`.

Forwarder keys are collector.toml's, given as KEY=VALUE with TOML values (`port=6514`,
`log_types=["audit"]`, `include=[{field="namespace", pattern="payments"}]`); a value that is not
TOML is taken as a string (`host=siem.example`)."""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from typing import Any

from fleetlog.cli.client import Connection
from fleetlog.common.errors import UsageError
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb


def settings_request(args: argparse.Namespace, verb: str, kind: str, name: str = "", body: dict[str, Any] | None = None,
          dry_run: bool = False) -> Any:
    """One `Admin/Settings` call; the collector's answer (the API's JSON)."""
    conn = Connection.from_args(args)
    request = pb.SettingsRequest(verb=verb, kind=kind, name=name, dry_run=dry_run,
                                 body_json=json.dumps(body) if body is not None else "")
    with conn.channel() as channel:
        reply = conn.admin(channel).Settings(request, metadata=conn.metadata, timeout=30)
    return json.loads(reply.json)


def key_values(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE arguments as a table: VALUE read as TOML when it is TOML, else as a string."""
    table: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"expected KEY=VALUE, got {pair!r}")
        try:
            table[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            table[key.strip()] = value
    return table


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def _changed(entry: dict[str, Any]) -> str:
    changed = entry.get("changed")
    return f"{changed['user']} via {changed['via']} {changed['time']}" if changed else "-"


# -- forwarders ---------------------------------------------------------------------------------

def run_forwarder_list(args: argparse.Namespace) -> int:
    answer = settings_request(args, "list", "forwarders")
    if args.format == "json":
        _print_json(answer)
        return 0
    rows = [[f["name"], f["type"], _destination(f), f["state"], str(f["lag_events"]), f["source"], _changed(f),
             f.get("last_error") or ""] for f in answer["forwarders"]]
    _table(rows, ["NAME", "TYPE", "DESTINATION", "STATE", "LAG", "SOURCE", "CHANGED", "LAST ERROR"])
    return 0


def _destination(forwarder: dict[str, Any]) -> str:
    if forwarder["type"] in ("syslog", "jsonl"):
        return f"{forwarder.get('protocol', 'tcp')}://{forwarder.get('host')}:{forwarder.get('port')}"
    return str(forwarder.get("path") or "stdout")


def run_forwarder_add(args: argparse.Namespace) -> int:
    body = {"name": args.name, **key_values(args.settings)}
    answer = settings_request(args, "create", "forwarders", args.name, body)
    print(f"forwarder {answer['name']} added ({answer['state']})")
    return 0


def edited(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """An entry's body as `edit NAME KEY=VALUE ... [--unset KEY]` leaves it: what the collector
    answers for it now, the keys given set, the keys unset back to their defaults."""
    body = {**settings_request(args, "get", kind, args.name), **key_values(args.settings)}
    for key in args.unset or ():
        body.pop(key, None)
    return body


def run_forwarder_edit(args: argparse.Namespace) -> int:
    body = edited(args, "forwarders")
    if args.enable or args.disable:
        body["enabled"] = bool(args.enable)
    answer = settings_request(args, "update", "forwarders", args.name, body)
    print(f"forwarder {answer['name']} changed ({answer['state']})")
    return 0


def run_forwarder_rm(args: argparse.Namespace) -> int:
    settings_request(args, "delete", "forwarders", args.name)
    print(f"forwarder {args.name} removed")
    return 0


def run_forwarder_test(args: argparse.Namespace) -> int:
    answer = settings_request(args, "test", "forwarders", args.name)
    print(f"forwarder {args.name} ({answer['target']}): {answer['answer']}")
    return 0 if answer["ok"] else 1


# -- namespaces ---------------------------------------------------------------------------------

def run_namespace_list(args: argparse.Namespace) -> int:
    answer = settings_request(args, "list", "namespaces")
    if args.format == "json":
        _print_json(answer)
        return 0
    items = ([answer["defaults"]] if answer.get("defaults") else []) + answer["namespaces"]
    rows = [[n["namespace"], n["effective"]["levels"], n["effective"]["retention"]["general"],
             n["effective"]["retention"]["security"], n["source"], _changed(n)] for n in items]
    _table(rows, ["NAMESPACE", "MIN LEVEL", "GENERAL", "SECURITY", "SOURCE", "CHANGED"])
    return 0


def run_namespace_set(args: argparse.Namespace) -> int:
    if args.reset:
        body: dict[str, Any] = {}
    else:
        current = settings_request(args, "get", "namespaces", args.namespace)
        body = {}
        level = args.level if args.level is not None else current.get("levels")
        if level and level != "default":
            body["levels"] = level
        retention = {tier: value for tier, value in (("general", args.general), ("security", args.security))
                     if value is not None}
        retention = {**{k: v for k, v in (current.get("retention") or {}).items() if v is not None}, **retention}
        retention = {k: v for k, v in retention.items() if v != "default"}
        if retention:
            body["retention"] = retention
    answer = settings_request(args, "update", "namespaces", args.namespace, body, dry_run=args.dry_run)
    if args.dry_run:
        print(f"namespace {args.namespace}: the next purge would remove "
              f"{answer['effect']['next_purge_removes']} stored events (nothing changed)")
        return 0
    effective = answer["effective"]
    print(f"namespace {args.namespace}: minimum level {effective['levels']}, retention general "
          f"{effective['retention']['general']}, security {effective['retention']['security']}")
    return 0


# -- tokens -------------------------------------------------------------------------------------

def run_token_list(args: argparse.Namespace) -> int:
    answer = settings_request(args, "list", "tokens")
    if args.format == "json":
        _print_json(answer)
        return 0
    rows = [[t["name"], t["role"], ",".join(t["namespaces"]) or "-", t["created"] or "-", t["last_used"] or "never",
             t["source"]] for t in answer["tokens"]]
    _table(rows, ["NAME", "ROLE", "NAMESPACES", "CREATED", "LAST USED", "SOURCE"])
    return 0


def run_token_create(args: argparse.Namespace) -> int:
    namespaces = [n.strip() for n in (args.namespaces or "").split(",") if n.strip()]
    answer = settings_request(args, "create", "tokens", args.name, {"name": args.name, "role": args.role,
                                                         "namespaces": namespaces})
    if args.out:
        try:
            fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise UsageError(f"--out: cannot create {args.out}: {exc.strerror} (the token was created; revoke "
                             f"it and try again)") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(answer["token"] + "\n")
        print(f"token {args.name} ({args.role}) created; written to {args.out} (shown only once)")
    else:
        print(answer["token"])
    return 0


def run_token_revoke(args: argparse.Namespace) -> int:
    settings_request(args, "delete", "tokens", args.name)
    print(f"token {args.name} revoked")
    return 0


def add_and_edit_verbs(verbs: Any, parents: list[argparse.ArgumentParser], noun: str, keys: str,
                       on_add: Any, on_edit: Any) -> argparse.ArgumentParser:
    """`add NAME KEY=VALUE ...` and `edit NAME KEY=VALUE ... [--unset KEY]`; the edit parser, for
    options of its own."""
    add = verbs.add_parser("add", parents=parents, help=f"add a {noun}: NAME KEY=VALUE ... ({keys})")
    edit = verbs.add_parser("edit", parents=parents, help=f"change a {noun}'s keys")
    for parser, handler in ((add, on_add), (edit, on_edit)):
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("settings", nargs="*", metavar="KEY=VALUE")
        parser.set_defaults(handler=handler)
    edit.add_argument("--unset", action="append", metavar="KEY", help="back to the key's default")
    return edit


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    listing = argparse.ArgumentParser(add_help=False)
    listing.add_argument("--format", choices=("table", "json"), default="table")

    forwarder = subparsers.add_parser("forwarder", parents=parents, help="forwarders managed live")
    verbs = forwarder.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(forwarder))
    verbs.add_parser("list", parents=[*parents, listing], help="every forwarder, its state and lag").set_defaults(
        handler=run_forwarder_list)
    edit = add_and_edit_verbs(verbs, parents, "forwarder", "collector.toml's keys", run_forwarder_add,
                              run_forwarder_edit)
    switch = edit.add_mutually_exclusive_group()
    switch.add_argument("--enable", action="store_true")
    switch.add_argument("--disable", action="store_true", help="keep it stored, send nothing")
    for verb, handler, text in (("rm", run_forwarder_rm, "remove a forwarder"),
                                ("test", run_forwarder_test, "send one test event; print what the destination answered")):
        parser = verbs.add_parser(verb, parents=parents, help=text)
        parser.add_argument("name", metavar="NAME")
        parser.set_defaults(handler=handler)

    namespace = subparsers.add_parser("namespace", parents=parents, help="namespaces' minimum level and retention")
    verbs = namespace.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(namespace))
    verbs.add_parser("list", parents=[*parents, listing], help="every namespace with settings, and the defaults (*)"
                     ).set_defaults(handler=run_namespace_list)
    set_ = verbs.add_parser("set", parents=parents, help="set a namespace's minimum level or retention ('*': the "
                            "defaults for new namespaces)")
    set_.add_argument("namespace", metavar="NAMESPACE")
    set_.add_argument("--level", metavar="L", help="minimum level stored (default: back to the default's)")
    set_.add_argument("--general", metavar="D", help="general-tier retention (e.g. 30d; default: the default's)")
    set_.add_argument("--security", metavar="D", help="security-tier retention (e.g. 1y)")
    set_.add_argument("--reset", action="store_true", help="remove the namespace's own settings")
    set_.add_argument("--dry-run", action="store_true", help="print what the next purge would remove; change nothing")
    set_.set_defaults(handler=run_namespace_set)

    token = subparsers.add_parser("token", parents=parents, help="access tokens")
    verbs = token.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(token))
    verbs.add_parser("list", parents=[*parents, listing], help="tokens: role, namespaces, created, last used"
                     ).set_defaults(handler=run_token_list)
    create = verbs.add_parser("create", parents=parents, help="create a token; its secret is printed once")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--role", required=True,
                        choices=("agent", "admin", "auditor", "namespace-admin", "namespace-auditor"))
    create.add_argument("--namespaces", metavar="N1,N2", help="for agent and namespace-* roles")
    create.add_argument("--out", metavar="FILE", help="write the secret to FILE (mode 0600) instead of stdout")
    create.set_defaults(handler=run_token_create)
    revoke = verbs.add_parser("revoke", parents=parents, help="revoke a token made here")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(handler=run_token_revoke)
