"""search, trace, export and bundle through a real collector process over gRPC, on the known
dataset (tests/search_dataset.py) written into the collector's own SQLite file."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import tarfile

import pytest

from tests.harness import run_cli, search_json, write_toml
from tests.search_dataset import ALL, build_store, labels


@pytest.fixture
def collector(cluster, tmp_path):
    build_store(tmp_path / "collector-1" / "data" / "events.db")
    return cluster.collector()


def cli(collector, *args: str, **kwargs):
    return run_cli("--collector", collector.address, *args, **kwargs)


def audit_messages(collector) -> list[str]:
    return [e["message"] for e in search_json(collector, "--action", "audit/search")]


def test_search_formats_order_trace_and_audit(collector):
    assert labels(search_json(collector)) == ALL
    assert labels(search_json(collector, "--host", "192.0.2.10", "--min-level", "error")) == {"e05", "e10"}
    assert labels(search_json(collector, "--message", "abc-123")) == {"e02"}

    # json and csv: oldest first; table: newest first; --order overrides
    assert [e["message"][:3] for e in search_json(collector, "--user", "alice,bob")] == ["e01", "e02", "e03", "e08"]
    rows = list(csv.DictReader(io.StringIO(cli(collector, "search", "--format", "csv", "--host", "web-2").stdout)))
    assert [r["message"][:3] for r in rows] == ["e03", "e07", "e08"]
    assert rows[0]["level"] == "error" and rows[0]["host_ip"] == "192.0.2.2" and rows[0]["fields"] == '{"card":"visa"}'
    assert rows[1]["time"] == "2025-12-31T23:59:59.999999Z"
    table = cli(collector, "search", "--host", "web-2", "--limit", "2").stdout.splitlines()
    assert table[0].split() == ["TIME", "LEVEL", "HOST", "REQUEST_ID", "USER", "MESSAGE"]
    assert [line.split()[-1] for line in table[1:]] == ["dave", "100%"]  # e08, e07: newest first
    asc = cli(collector, "search", "--host", "web-2", "--order", "asc", "--limit", "1", "--format", "json").stdout
    assert json.loads(asc)["message"].startswith("e03")

    trace = cli(collector, "trace", "req-101", "--format", "json")
    assert trace.returncode == 0, trace.stderr
    steps = [json.loads(line) for line in trace.stdout.splitlines()]
    assert [(e["message"][:3], e["host"]) for e in steps] == [("e03", "web-2"), ("e08", "web-2")]

    messages = audit_messages(collector)
    assert "search: --host='192.0.2.10' --min-level='error'" in messages
    assert "search: --message='abc-123'" in messages
    assert "trace: --request-id='req-101'" in messages
    audit = search_json(collector, "--action", "audit/search", "--message", "trace")[0]
    assert audit["user"] == "anonymous" and audit["host"] == "collector-1" and audit["log_type"] == "audit"
    assert audit["source"] == "collector" and audit["fields"]["filters"] == {"request_id": "req-101"}


@pytest.mark.parametrize("args,message", [
    (("--message-regex", "(oops"), "fleetlog search: --message-regex: invalid regular expression '(oops'"),
    (("--level", "info,chatty"), "fleetlog search: --level: unknown level 'chatty'"),
    (("--since", "last tuesday"), "fleetlog search: --since: cannot read 'last tuesday' as a time"),
    (("--where", "colour=red"), "fleetlog search: --where: unknown field 'colour'"),
    (("--limit", "-1"), "fleetlog search: --limit: must be 0 (all) or a positive number"),
])
def test_bad_search_input_exits_2(collector, args, message):
    result = cli(collector, "search", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1


def test_export_every_format(collector, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    done = cli(collector, "export", "--format", "csv", "--out", str(out / "all.csv"), "--namespace", "payments")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "exported 3 events to " + str(out / "all.csv") + "\n"   # no progress bar off a terminal
    rows = list(csv.DictReader((out / "all.csv").read_text().splitlines()))
    assert list(rows[0]) == ["seq", "id", "time", "received_at", "host", "host_ip", "collector", "namespace",
                             "source", "log_type", "app", "pid", "level", "request_id", "user", "action",
                             "message", "fields", "tier", "truncated"]
    assert [(r["message"][:3], r["host"], r["level"], r["user"]) for r in rows] == [
        ("e04", "db-1", "debug", ""), ("e10", "db-1", "error", "svc-batch"), ("e05", "db-1", "critical", "bob_x")]
    assert rows[1]["fields"] == '{"api_key":"k-999"}' and rows[1]["tier"] == "security"

    columns = "time,host,message"
    assert cli(collector, "export", "--format", "jsonl", "--out", str(out / "e.jsonl"), "--columns", columns,
               "--user", "bob*").returncode == 0
    records = [json.loads(line) for line in (out / "e.jsonl").read_text().splitlines()]
    assert records == [
        {"time": "2025-12-01T11:15:30.000000Z", "host": "web-2",
         "message": "e03 payment failed: card declined password=hunter2"},
        {"time": "2025-12-02T00:00:00.000000Z", "host": "db-1", "message": "e05 disk full on /var/lib/pg"},
        {"time": "2026-01-01T00:00:00.000000Z", "host": "web-2", "message": "e08 Password reset requested for dave"},
    ]

    assert cli(collector, "export", "--format", "xlsx", "--out", str(out / "e.xlsx"), "--columns",
               "seq,time,level,host,message", "--host", "web-1").returncode == 0
    import openpyxl
    sheet = openpyxl.load_workbook(out / "e.xlsx", read_only=True)["events"]
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == ["seq", "time", "level", "host", "message"]
    assert [(r[2], r[3], r[4][:3]) for r in values[1:]] == [
        ("info", "web-1", "e09"), ("info", "web-1", "e01"), ("warning", "web-1", "e02"), ("notice", "web-1", "e06")]
    assert isinstance(values[1][0], int) and values[2][1] == "2025-12-01T10:00:00.000000Z"

    assert cli(collector, "export", "--format", "pdf", "--out", str(out / "e.pdf"), "--log-type",
               "application,audit").returncode == 0
    text = subprocess.run(["pdftotext", "-layout", str(out / "e.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "fleetlog export" in text and "filters: --log-type 'application,audit'" in text
    assert "Page 1 of 1" in text
    header = next(line for line in text.splitlines() if "request_id" in line)
    assert header.split() == ["time", "level", "host", "request_id", "user", "message"]
    for label in ("e01", "e02", "e03", "e06", "e07", "e09", "e10"):
        assert f"{label} " in text
    assert "e04 " not in text and "e05 " not in text and "e08 " not in text
    assert "2025-12-01T14:35:00.000000Z" in text and "svc-batch" in text

    messages = audit_messages(collector)
    assert "export: --namespace='payments'" in messages and "export: --host='web-1'" in messages


def test_export_of_many_rows_spans_pages(collector, tmp_path):
    for i in range(45):
        assert cli(collector, "note", f"note number {i:02d}").returncode == 0
    pdf = tmp_path / "notes.pdf"
    assert cli(collector, "export", "--format", "pdf", "--out", str(pdf), "--action", "Admin.EventLog.Note",
               "--columns", "user,message").returncode == 0
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Page 1 of 2" in text and "Page 2 of 2" in text
    assert all(f"note number {i:02d}" in text for i in range(45))


def test_export_bad_input_writes_nothing(collector, tmp_path):
    target = tmp_path / "x.csv"
    result = cli(collector, "export", "--format", "csv", "--out", str(target), "--columns", "time,colour")
    assert result.returncode == 2
    assert result.stderr.startswith("fleetlog export: --columns: unknown column 'colour' (columns: seq, id,")
    result = cli(collector, "export", "--format", "csv", "--out", str(target), "--min-level", "loud")
    assert result.returncode == 2 and "--min-level: unknown level 'loud'" in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "collector-1"]   # no file, no leftover temp file
    result = cli(collector, "export", "--format", "doc", "--out", str(target))
    assert result.returncode == 2 and "invalid choice: 'doc'" in result.stderr


def test_bundle_masks_secrets_and_describes_itself(collector, tmp_path):
    target = tmp_path / "support.tar.gz"
    result = cli(collector, "bundle", "--date-from", "2025-12-01", "--date-to", "2025-12-02",
                 "--log-type", "application,audit", "--out-file", str(target), "--compress")
    assert result.returncode == 0, result.stderr
    with tarfile.open(target) as tar:
        assert sorted(tar.getnames()) == ["digests.txt", "events.jsonl", "manifest.json", "signing.pub"]   # the generated key
        events = [json.loads(line) for line in tar.extractfile("events.jsonl")]
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert [e["message"][:3] for e in events] == ["e01", "e02", "e03", "e10", "e06"]
    by_label = {e["message"][:3]: e for e in events}
    assert by_label["e03"]["message"] == "e03 payment failed: card declined password=***"
    assert by_label["e06"]["message"] == "e06 Contact user@x for access; Authorization: Bearer ***"
    assert by_label["e06"]["fields"] == {"token": "***"}
    assert by_label["e10"]["fields"] == {"api_key": "***"}
    assert by_label["e01"]["message"] == "e01 user alice logged in from 10.0.0.7"
    assert "hunter2" not in target.read_bytes().decode("latin-1")
    assert manifest["format"] == "fleetlog-bundle/1"
    assert manifest["collector"]["name"] == "collector-1" and manifest["collector"]["address"] == collector.address
    assert manifest["filters"] == {"since": "2025-12-01", "until": "2025-12-02T23:59:59.999999Z",
                                   "log_type": "application,audit"}
    assert manifest["counts"] == {"events": 5, "events_with_secrets_masked": 3,
                                  "by_level": {"error": 2, "info": 1, "notice": 1, "warning": 1},
                                  "by_host": {"db-1": 1, "web-1": 3, "web-2": 1}}
    assert manifest["time_range"] == {"first": "2025-12-01T10:00:00.000000Z", "last": "2025-12-02T08:30:00.000000Z"}
    assert manifest["checkpoint"]["seq"] == manifest["chain_head"]["seq"] >= 11   # signed up to the head
    assert len(manifest["chain_head"]["link"]) == 64

    plain = cli(collector, "bundle", "--log-level", "alert,critical")
    assert plain.returncode == 0, plain.stderr
    lines = [json.loads(line) for line in plain.stdout.splitlines()]
    assert [e["message"][:3] for e in lines] == ["e05", "e08"]
    assert "bundle: --level='alert,critical'" in audit_messages(collector)

    clash = cli(collector, "bundle", "--date-from", "2025-12-01", "--since", "1d")
    assert clash.returncode == 2 and "--date-from and --since name the same filter" in clash.stderr


def _token_file(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.token"
    path.write_text(f"secret-of-{name}\n")
    return str(path)


def test_namespace_roles_see_only_their_namespaces(cluster, tmp_path):
    entries = [("ops", "auditor", []), ("pay", "namespace-auditor", ["payments"]), ("web-1", "agent", ["default"])]
    write_toml(tmp_path / "tokens.toml", {"tokens": [
        {"name": name, "sha256": hashlib.sha256(f"secret-of-{name}".encode()).hexdigest(), "role": role,
         "namespaces": namespaces} for name, role, namespaces in entries]})
    build_store(tmp_path / "collector-1" / "data" / "events.db")
    collector = cluster.collector(tokens_file=str(tmp_path / "tokens.toml"))

    def search(token: str, *args: str) -> subprocess.CompletedProcess:
        return cli(collector, "--token-file", _token_file(tmp_path, token), "search", "--format", "json",
                   "--limit", "0", *args)

    def found(token: str, *args: str) -> set[str]:
        result = search(token, *args)
        assert result.returncode == 0, result.stderr
        return labels([json.loads(line) for line in result.stdout.splitlines()])

    assert found("ops") == ALL
    assert found("pay") == {"e04", "e05", "e10"}
    assert found("pay", "--min-level", "error") == {"e05", "e10"}
    assert found("pay", "--namespace", "default") == set()
    trace = cli(collector, "--token-file", _token_file(tmp_path, "pay"), "trace", "req-101", "--format", "json")
    assert trace.returncode == 0 and trace.stdout == ""
    export = tmp_path / "pay.jsonl"
    assert cli(collector, "--token-file", _token_file(tmp_path, "pay"), "export", "--format", "jsonl",
               "--out", str(export)).returncode == 0
    assert labels([json.loads(line) for line in export.read_text().splitlines()]) == {"e04", "e05", "e10"}

    denied = search("web-1")
    assert denied.returncode == 1 and "role 'agent' may not search" in denied.stderr

    audits = [json.loads(line) for line in search("ops", "--action", "audit/*").stdout.splitlines()]
    assert {(a["action"], a["user"]) for a in audits} >= {("audit/search", "ops"), ("audit/search", "pay"),
                                                          ("audit/denied", "web-1")}
    assert any(a["user"] == "pay" and a["message"] == "search: --min-level='error'" for a in audits)
    assert any(a["user"] == "pay" and a["message"] == "export: (no filters)" for a in audits)


def test_progress_bar_only_on_a_terminal(collector, tmp_path):
    import os
    import pty
    import sys

    from tests.harness import ROOT, env
    controller, terminal = pty.openpty()
    target = tmp_path / "p.csv"
    process = subprocess.Popen([sys.executable, "-m", "fleetlog.cli.main", "--collector", collector.address, "export",
                                "--format", "csv", "--out", str(target)], stderr=terminal, stdout=subprocess.DEVNULL,
                               env=env(), cwd=ROOT)
    os.close(terminal)
    assert process.wait(60) == 0
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    text = seen.decode()
    total = len(target.read_text().splitlines()) - 1
    assert f"\rexport csv [####################] {total:,} events" in text
    assert text.rstrip().endswith(f"exported {total} events to {target}")


@pytest.mark.parametrize("command", ["search", "export", "bundle"])
def test_help_of_every_filter_command_is_plain_text(command):
    """`--where`'s help has a `%`, which argparse read as a format and printed a Python dict."""
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "audit-search syntax: % any run of characters, ; separates" in text
    assert "option_strings" not in text
