"""Identity and access (contract §4.1) with real TLS certificates, real tokens and real daemons:
origin comes from the authenticated identity (a claim in the payload or in the agent's hello is
kept only as fields.claimed_host), roles are enforced both ways, agent tokens are limited to
their namespaces, and every denial or failed authentication is an audit event."""

from __future__ import annotations

import hashlib
import json
import pathlib
import secrets
import subprocess
import sys

import grpc

from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2_grpc as pb_grpc
from tests.certs import TestCA
from tests.harness import ROOT, env, free_port, run_cli, search_json, wait_for, write_lines, write_toml


def _tokens(tmp_path, entries: list[tuple[str, str, list[str]]]) -> tuple[str, dict[str, str]]:
    """Write tokens.toml (hashes only) and one token file per holder; returns (tokens.toml, paths)."""
    table, paths = [], {}
    for name, role, namespaces in entries:
        token = secrets.token_urlsafe(24)
        table.append({"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(), "role": role,
                      "namespaces": namespaces})
        path = tmp_path / f"{name}.token"
        path.write_text(token + "\n")
        paths[name] = str(path)
    return str(write_toml(tmp_path / "tokens.toml", {"tokens": table})), paths


def _ingest_once(address: str, metadata=()) -> grpc.StatusCode | None:
    """One real gRPC ingest stream holding one event; the status it ended with (None = OK)."""
    chunk = pb.Chunk(source="file:/x.log", source_key="x", namespace="default", log_type="application",
                     position=[1], time_us=[1], level=bytes([6]), message=["hello"], request_id=[""], user=[""],
                     action=[""], app=[""], pid=[0], fields_json=[""], flags=bytes(1))
    requests = [pb.IngestRequest(hello=pb.Hello(node_name="reader")),
                pb.IngestRequest(batch=pb.Batch(batch_id=1, chunks=[chunk]))]
    with grpc.insecure_channel(address) as channel:
        try:
            list(pb_grpc.IngestStub(channel).Stream(iter(requests), metadata=metadata, timeout=20))
        except grpc.RpcError as exc:
            return exc.code()
    return None


def _denials(collector, admin_token: str) -> list[dict]:
    return search_json(collector, "--action", "audit/denied", "--token-file", admin_token)


def test_tokens_origin_roles_and_namespaces(cluster, tmp_path):
    tokens_file, tok = _tokens(tmp_path, [
        ("web-1", "agent", ["default"]), ("web-2", "agent", ["default"]),
        ("root", "admin", []), ("alice", "auditor", []), ("bob", "namespace-auditor", ["payments"])])
    collector = cluster.collector(tokens_file=tokens_file)

    logs1, logs2 = tmp_path / "logs1", tmp_path / "logs2"
    logs1.mkdir(), logs2.mkdir()
    write_lines(logs1 / "app.log", [
        json.dumps({"time": "2025-12-01T10:00:00Z", "level": "info", "host": "db-1", "msg": "spoofed host"}),
        "2025-12-01T10:00:01Z INFO plain line"])
    write_lines(logs2 / "pay.log", ["2025-12-01T10:00:02Z ERROR payment in a forbidden namespace"])
    # web-1 calls itself db-9 in its hello; its token says web-1.
    cluster.agent("db-9", [collector], [{"type": "file", "paths": [str(logs1 / "*.log")]}],
                  token_file=tok["web-1"])
    # web-2 may write only "default" but ships "payments".
    cluster.agent("web-2", [collector], [{"type": "file", "paths": [str(logs2 / "*.log")]}],
                  token_file=tok["web-2"], namespace="payments")

    wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total", {"host": "web-1"}) == 2, 30,
             "web-1's events stored")
    events = search_json(collector, "--source", f"file:{logs1}/*", "--token-file", tok["alice"])
    assert [(e["host"], e["host_ip"], e["message"], e["fields"].get("claimed_host")) for e in events] == [
        ("web-1", "127.0.0.1", "spoofed host", "db-1"), ("web-1", "127.0.0.1", "plain line", "db-9")]
    assert not search_json(collector, "--host", "db-1,db-9", "--token-file", tok["root"])

    # The agent token limited to "default" cannot write "payments": dropped, counted, audited.
    wait_for(lambda: collector.metric("fleetlog_collector_events_dropped_total", {"reason": "namespace_denied"}) == 1,
             30, "namespace denial counted")
    assert not search_json(collector, "--namespace", "payments", "--token-file", tok["root"])
    denial = "denied ingest for web-2 (agent): may not write namespace 'payments'"
    wait_for(lambda: denial in [d["message"] for d in _denials(collector, tok["root"])], 10,
             "namespace denial audited")
    # More of the same is counted, but audited once a minute, not once per batch.
    write_lines(logs2 / "pay.log", ["2025-12-01T10:00:03Z ERROR second payment"])
    wait_for(lambda: collector.metric("fleetlog_collector_events_dropped_total", {"reason": "namespace_denied"}) == 2,
             30, "second namespace denial counted")
    assert [d["message"] for d in _denials(collector, tok["root"])].count(denial) == 1

    # Readers cannot ingest (a real gRPC stream with the auditor's token).
    alice = pathlib.Path(tok["alice"]).read_text().strip()
    assert _ingest_once(collector.address, (("authorization", f"Bearer {alice}"),)) == \
        grpc.StatusCode.PERMISSION_DENIED
    # Agents cannot read.
    result = run_cli("--collector", collector.address, "--token-file", tok["web-1"], "search")
    assert result.returncode == 1
    assert result.stderr.strip() == (f"fleetlog search: collector {collector.address}: "
                                     "role 'agent' may not search")
    # No token, or an unknown one: not authenticated.
    for _ in range(3):   # a retrying peer: refused every time, recorded once per 10 s
        assert _ingest_once(collector.address) == grpc.StatusCode.UNAUTHENTICATED
    (tmp_path / "forged.token").write_text("not-a-real-token\n")
    result = run_cli("--collector", collector.address, "--token-file", str(tmp_path / "forged.token"), "status")
    assert result.returncode == 1 and "unknown token" in result.stderr and "Traceback" not in result.stderr

    denials = _denials(collector, tok["root"])
    messages = [d["message"] for d in denials]
    assert "denied ingest for alice (auditor): role auditor may not ingest" in messages
    assert "denied search for web-1 (agent): role agent may not search" in messages
    assert messages.count("denied ingest for unauthenticated peer: no valid credentials (token or client "
                          "certificate) presented") == 1
    assert "denied status for unauthenticated peer: unknown token" in messages
    assert all(d["tier"] == "security" and d["log_type"] == "audit" and d["level"] == "warning"
               and d["host"] == "collector-1" for d in denials)

    # Auditors add notes with themselves as the author; a namespace auditor sees only its namespace.
    note = run_cli("--collector", collector.address, "--token-file", tok["alice"], "note", "quarterly review done")
    assert note.returncode == 0, note.stderr
    [stored] = search_json(collector, "--action", "Admin.EventLog.Note", "--token-file", tok["alice"])
    assert (stored["message"], stored["user"], stored["fields"]["author"]) == ("quarterly review done", "alice",
                                                                               "alice")
    assert search_json(collector, "--token-file", tok["bob"]) == []


def test_mtls_identity_from_certificate(cluster, tmp_path):
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("collector-1", server=True)
    node = ca.issue("web-7")
    operator = ca.issue("ops")
    tokens_file, _ = _tokens(tmp_path, [("ops", "auditor", [])])   # gives the "ops" certificate a reader role
    collector = cluster.collector(tokens_file=tokens_file, tls={"ca": server.ca, "cert": server.cert,
                                                                "key": server.key, "require_client_cert": True})
    logs = tmp_path / "logs"
    logs.mkdir()
    write_lines(logs / "app.log", ["2025-12-01T10:00:00Z INFO over mutual TLS"])
    cluster.agent("imposter", [collector], [{"type": "file", "paths": [str(logs / "*.log")]}],
                  tls={"ca": node.ca, "cert": node.cert, "key": node.key})
    wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total", {"host": "web-7"}) == 1, 30,
             "event stored under the certificate's name")

    def cli(cert, *args):
        return run_cli("--collector", collector.address, "--ca", ca.ca_path.as_posix(), "--cert", cert.cert,
                       "--key", cert.key, *args)
    result = cli(operator, "search", "--format", "json", "--host", "web-7")
    assert result.returncode == 0, result.stderr
    [event] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (event["host"], event["fields"]["claimed_host"]) == ("web-7", "imposter")
    # A certificate without a CN names the node by its first DNS SAN.
    san_only = ca.issue("", dns=["web-8.example", "alias.example"], file_stem="web-8")
    logs8 = tmp_path / "logs8"
    logs8.mkdir()
    write_lines(logs8 / "app.log", ["2025-12-01T10:00:00Z INFO named by SAN"])
    cluster.agent("web-8", [collector], [{"type": "file", "paths": [str(logs8 / "*.log")]}],
                  tls={"ca": san_only.ca, "cert": san_only.cert, "key": san_only.key})
    wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total", {"host": "web-8.example"}) == 1, 30,
             "event stored under the certificate's first DNS SAN")
    # The node's own certificate may ingest but not read.
    denied = cli(node, "search")
    assert denied.returncode == 1 and "role 'agent' may not search" in denied.stderr
    # Without a client certificate the TLS handshake itself fails.
    bare = run_cli("--collector", collector.address, "--ca", ca.ca_path.as_posix(), "status", timeout=60)
    assert bare.returncode == 1 and "Traceback" not in bare.stderr


def test_a_certificate_without_a_tokens_entry_writes_only_default(cluster, tmp_path):
    """Certificate agents with no tokens entry could write any namespace (never everything by
    omission); an entry of the certificate's name gives it its namespaces."""
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("collector-1", server=True)
    tokens_file, tok = _tokens(tmp_path, [("root", "admin", []), ("pay-9", "agent", ["payments"])])
    collector = cluster.collector(tokens_file=tokens_file, tls={"ca": server.ca, "cert": server.cert,
                                                                "key": server.key, "require_client_cert": True})
    for name, namespace in (("web-9", "payments"), ("web-10", "default"), ("pay-9", "payments")):
        cert = ca.issue(name)
        logs = tmp_path / f"logs-{name}"
        logs.mkdir()
        write_lines(logs / "app.log", [f"2025-12-01T10:00:00Z INFO {name} writes {namespace}"])
        cluster.agent(name, [collector], [{"type": "file", "paths": [str(logs / "*.log")]}], namespace=namespace,
                      tls={"ca": cert.ca, "cert": cert.cert, "key": cert.key})
    wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total", {"host": "web-10"}) == 1
             and collector.metric("fleetlog_collector_events_stored_total", {"host": "pay-9"}) == 1
             and collector.metric("fleetlog_collector_events_dropped_total", {"reason": "namespace_denied"}) >= 1,
             30, "the default and the entitled events stored, the other refused")
    assert collector.metric("fleetlog_collector_events_stored_total", {"host": "web-9"}) == 0
    admin = ["--collector", collector.address, "--ca", ca.ca_path.as_posix(), "--token-file", tok["root"]]
    operator = ca.issue("root")
    admin += ["--cert", operator.cert, "--key", operator.key]
    result = run_cli(*admin, "search", "--format", "json", "--log-type", "application")
    assert result.returncode == 0, result.stderr
    stored = sorted((e["host"], e["namespace"]) for e in map(json.loads, result.stdout.splitlines()))
    assert stored == [("pay-9", "payments"), ("web-10", "default")]
    result = run_cli(*admin, "search", "--format", "json", "--action", "audit/denied")
    assert "denied ingest for web-9 (agent): may not write namespace 'payments'" in result.stdout


def test_refuses_to_listen_beyond_loopback_without_tls_or_tokens(tmp_path):
    port = free_port()
    config = write_toml(tmp_path / "collector.toml", {
        "node_name": "c", "listen": f"0.0.0.0:{port}", "data_dir": str(tmp_path / "data"),
        "metrics": {"listen": f"127.0.0.1:{free_port()}"}})
    for check in ([], ["--check-config"]):   # refused at start, and by the configuration check
        result = subprocess.run([sys.executable, "-m", "fleetlog.collector", "--config", str(config), *check],
                                capture_output=True, text=True, timeout=60, env=env(), cwd=ROOT, check=False)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            (f"fleetlog-collector: collector.toml: listen: refusing to listen on 0.0.0.0:{port}"
             " without TLS or tokens_file; use a loopback address, configure tls/tokens_file, or set insecure = true")]
        assert result.stdout == ""
    insecure = write_toml(tmp_path / "insecure.toml", {"node_name": "c", "listen": f"0.0.0.0:{port}",
                                                       "insecure": True, "data_dir": str(tmp_path / "data")})
    result = subprocess.run([sys.executable, "-m", "fleetlog.collector", "--config", str(insecure), "--check-config"],
                            capture_output=True, text=True, timeout=60, env=env(), cwd=ROOT, check=False)
    assert result.returncode == 0 and json.loads(result.stdout)["insecure"] is True
