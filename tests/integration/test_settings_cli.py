"""The CLI's settings verbs (issue 28) against a real collector: `fleetlog token create|list|revoke`
(a token made by the CLI works, and is refused within 5 s of its revocation, with no restart),
`fleetlog forwarder add|list|edit|test|rm` (a test event reaches a real TCP listener; an
unreachable one answers the error), `fleetlog namespace set|list`; one-line errors and exit codes."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from tests.harness import Cluster, free_port, run_cli, wait_for
from tests.web_console import write_tokens


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("settings-cli")
    cluster = Cluster(folder)
    tokens_file, _tokens, files = write_tokens(folder)
    collector = cluster.collector(tokens_file=tokens_file)
    try:
        yield collector, files, folder
    finally:
        cluster.stop_all()


def cli(collector, token_file, *args):
    return run_cli("--collector", collector.address, "--token-file", token_file, *args)


def test_token_created_by_the_cli_works_and_is_refused_once_revoked(setup):
    collector, files, folder = setup
    secret_file = folder / "made.token"
    made = cli(collector, files["root"], "token", "create", "made", "--role", "auditor", "--out", str(secret_file))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"token made (auditor) created; written to {secret_file} (shown only once)"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    wait_for(lambda: cli(collector, str(secret_file), "status").returncode == 0, 30, "the new token accepted")
    listed = json.loads(cli(collector, files["root"], "token", "list", "--format", "json").stdout)
    made_entry = next(t for t in listed["tokens"] if t["name"] == "made")
    assert made_entry["role"] == "auditor" and made_entry["source"] == "store" and made_entry["created"]
    wait_for(lambda: next(t for t in json.loads(cli(collector, files["root"], "token", "list", "--format",
                                                    "json").stdout)["tokens"] if t["name"] == "made")["last_used"],
             15, "last use recorded")
    assert cli(collector, files["root"], "token", "revoke", "made").stdout.strip() == "token made revoked"
    wait_for(lambda: cli(collector, str(secret_file), "status").returncode != 0, 30, "the revoked token refused")
    refused = cli(collector, str(secret_file), "status")
    assert refused.returncode == 1 and refused.stderr.strip().endswith("unknown token")
    audit = json.loads("[" + ",".join(cli(collector, files["root"], "search", "--format", "json", "--namespace",
                                          "_collector", "--action", "settings/tokens.*").stdout.split("\n")[:-1])
                       + "]")
    assert [(e["action"], e["user"], e["fields"]["via"]) for e in audit] == [
        ("settings/tokens.create", "root", "cli"), ("settings/tokens.delete", "root", "cli")]


def test_token_errors(setup):
    collector, files, _ = setup
    twice = cli(collector, files["root"], "token", "create", "root", "--role", "admin")
    assert twice.returncode == 1 and twice.stderr.strip() == f"fleetlog token: collector {collector.address}: " \
        "tokens: 'root' exists already"
    refused = cli(collector, files["payadm"], "token", "create", "x", "--role", "admin")
    assert refused.returncode == 1 and "may not change tokens" in refused.stderr
    unknown = cli(collector, files["root"], "token", "revoke", "nobody")
    assert unknown.returncode == 1 and unknown.stderr.strip().endswith("tokens: no entry 'nobody'")


def _listener() -> tuple[int, list[bytes]]:
    """A TCP listener that keeps what every connection sends (the running forwarder's too)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    got: list[bytes] = []

    def read(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                got.append(data)

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=read, args=(conn,), daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], got


def test_forwarder_add_test_edit_rm(setup):
    collector, files, _ = setup
    port, got = _listener()
    added = cli(collector, files["root"], "forwarder", "add", "siem", "type=syslog", "host=127.0.0.1",
                f"port={port}", "protocol=tcp", 'log_types=["audit"]')
    assert added.returncode == 0, added.stderr
    listed = json.loads(cli(collector, files["root"], "forwarder", "list", "--format", "json").stdout)["forwarders"]
    assert [(f["name"], f["port"], f["log_types"], f["source"]) for f in listed] == [("siem", port, ["audit"], "store")]
    tested = cli(collector, files["root"], "forwarder", "test", "siem")
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.strip() == f"forwarder siem (tcp://127.0.0.1:{port}): delivered: the destination " \
        "accepted the event"
    wait_for(lambda: b"fleetlog test event: forwarder siem" in b"".join(got), 10, "the test event received")
    closed = free_port()
    assert cli(collector, files["root"], "forwarder", "edit", "siem", f"port={closed}").returncode == 0
    failed = cli(collector, files["root"], "forwarder", "test", "siem")
    assert failed.returncode == 1 and f"cannot connect to tcp://127.0.0.1:{closed}" in failed.stdout
    bad = cli(collector, files["root"], "forwarder", "edit", "siem", "protocol=carrier")
    assert bad.returncode == 2 and bad.stderr.strip() == \
        'fleetlog forwarder: forwarders.siem.protocol: expected "udp" or "tcp" or "tls", got "carrier"'
    disabled = cli(collector, files["root"], "forwarder", "edit", "siem", "--disable")
    assert disabled.stdout.strip() == "forwarder siem changed (disabled)"
    assert cli(collector, files["root"], "forwarder", "rm", "siem").stdout.strip() == "forwarder siem removed"
    assert json.loads(cli(collector, files["root"], "forwarder", "list", "--format", "json").stdout) == \
        {"forwarders": []}


def test_namespace_set_and_list(setup):
    collector, files, _ = setup
    dry = cli(collector, files["payadm"], "namespace", "set", "payments", "--general", "1d", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.strip() == \
        "namespace payments: the next purge would remove 0 stored events (nothing changed)"
    done = cli(collector, files["payadm"], "namespace", "set", "payments", "--level", "warning", "--general", "30d")
    assert done.stdout.strip() == "namespace payments: minimum level warning, retention general 30d, security 1y"
    hidden = cli(collector, files["payadm"], "namespace", "set", "default", "--level", "error")
    assert hidden.returncode == 1 and hidden.stderr.strip().endswith("namespaces: no entry 'default'")
    refused = cli(collector, files["payadm"], "namespace", "set", "default", "--reset")
    assert refused.returncode == 1 and "may change only its namespaces (payments)" in refused.stderr
    listed = json.loads(cli(collector, files["root"], "namespace", "list", "--format", "json").stdout)
    assert listed["defaults"]["levels"] == "info"
    assert [(n["namespace"], n["levels"], n["retention"], (n["changed"] or {}).get("via"))
            for n in listed["namespaces"]] == [
        ("default", None, {"general": None, "security": None}, None),      # named by agent tokens
        ("payments", "warning", {"general": "30d", "security": None}, "cli")]
    table = cli(collector, files["root"], "namespace", "list").stdout.splitlines()
    assert table[0].split() == ["NAMESPACE", "MIN", "LEVEL", "GENERAL", "SECURITY", "SOURCE", "CHANGED"]
    assert [line.split()[:5] for line in table[1:]] == [["*", "info", "90d", "1y", "collector.toml"],
                                                        ["default", "info", "90d", "1y", "default"],
                                                        ["payments", "warning", "30d", "1y", "store"]]


def test_agents_and_strangers_are_refused(setup):
    collector, files, folder = setup
    agent = cli(collector, files["web-1"], "forwarder", "list")
    assert agent.returncode == 1 and agent.stderr.strip() == \
        f"fleetlog forwarder: collector {collector.address}: role 'agent' may not read settings"
    stranger = folder / "stranger.token"
    stranger.write_text("not-a-token\n")
    refused = cli(collector, str(stranger), "token", "list")
    assert refused.returncode == 1 and refused.stderr.strip().endswith("unknown token")
    bad = cli(collector, files["root"], "forwarder", "add", "x", "no-equals-sign")
    assert bad.returncode == 2 and bad.stderr.strip() == "fleetlog forwarder: expected KEY=VALUE, got 'no-equals-sign'"
    denials = json.loads("[" + ",".join(cli(collector, files["root"], "search", "--format", "json", "--namespace",
                                            "_collector", "--action", "audit/denied", "--user", "web-1"
                                            ).stdout.split("\n")[:-1]) + "]")
    assert any("settings list forwarders" in e["message"] for e in denials)
