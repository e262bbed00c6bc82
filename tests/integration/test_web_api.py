"""The console's JSON API (contract §8) against a real collector process with real agents: every
endpoint, every filter error (HTTP 400 with the CLI's own message), every role, keyset paging,
and the audit trail of console searches (`fields.via = "web"`)."""

from __future__ import annotations

import csv
import html
import io
import json
import pathlib
import socket
import tarfile
import threading
import time
import urllib.request

import openpyxl
import pytest

from tests.harness import Cluster, free_port, run_cli, search_json, wait_for
from tests.web_console import (
    PAY_LINES,
    WEB1_LINES,
    WEB2_LINES,
    XSS_IMG,
    XSS_SCRIPT,
    Console,
    Http,
    start_console,
)


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web-api")
    cluster = Cluster(folder)
    try:
        yield start_console(cluster, folder)
    finally:
        cluster.stop_all()


def api(console: Console, who: str | None) -> Http:
    return Http(console.base, token=console.tokens[who] if who else None)


def messages(reply) -> list[str]:
    return [e["message"] for e in reply.json()["events"]]


APP = "&log_type=application"


# -- authentication and roles -------------------------------------------------------------------

def test_without_credentials_api_is_401_and_pages_go_to_sign_in(console):
    anonymous = api(console, None)
    reply = anonymous.get("/api/v1/events")
    assert reply.status == 401 and "Bearer" in reply.json()["error"]
    reply = anonymous.get("/events?user=alice")
    assert reply.status == 302 and reply.headers["Location"] == "/signin?next=%2Fevents%3Fuser%3Dalice"
    assert anonymous.get("/signin").status == 200


def test_unknown_token_is_401_and_audited_agents_are_refused(console):
    reply = Http(console.base, token="not-a-token").get("/api/v1/events")
    assert reply.status == 401 and reply.json() == {"error": "unknown token"}
    reply = api(console, "web-1").get("/api/v1/events")
    assert reply.status == 403 and reply.json() == {"error": "role 'agent' may not use the console"}
    denials = [e["message"] for e in console.cli_events("--action", "audit/denied")]
    assert "denied web GET /api/v1/events for unauthenticated peer: unknown token" in denials
    assert "denied web GET /api/v1/events for web-1 (agent): role 'agent' may not use the console" in denials


# -- events: filters with the CLI's meaning ----------------------------------------------------

@pytest.mark.parametrize(("query", "expected"), [
    ("user=alice", ["api done", "cart slow", "api call", "GET /cart started"]),
    ("user=alice&host=web-2", ["api done", "api call"]),
    ("level=error,warning", ["card declined", XSS_IMG, XSS_SCRIPT, "payment failed", "cart slow"]),
    ("min_level=error", ["card declined", XSS_SCRIPT, "payment failed"]),
    ("request_id=req-7f3a&order=asc", ["GET /cart started", "api call", "cart slow", "api done"]),
    ("request_id=req-*&min_level=warning", ["payment failed", "cart slow"]),
    ("host=web-*&user=bob,carol", ["login ok", "payment failed"]),
    ("message=%22payment+failed%22", ["payment failed"]),
    ("message_regex=alice%20api%20(call|done)%24", ["api done", "api call"]),
    ("where=user%3Dma%25%3B+time%3D%25+10%3A00%3A03%25", [XSS_SCRIPT]),
    ("since=2025-12-01T10:00:04Z&until=2025-12-01T10:00:05Z", ["card declined", XSS_IMG]),
    ("date=2025-12-01+10:00:0&namespace=payments", ["card declined"]),
])
def test_events_filters_mean_what_the_cli_means(console, query, expected):
    reply = api(console, "root").get(f"/api/v1/events?{query}{APP}")
    assert reply.status == 200, reply.text
    got = [_strip_pairs(m) for m in messages(reply)]
    assert got == expected
    # The same filters through the CLI find the same events.
    args = [a for part in query.split("&") for a in _cli_args(part)]
    cli = console.cli_events(*args, "--log-type", "application")
    assert sorted(_strip_pairs(e["message"]) for e in cli) == sorted(expected)


def _strip_pairs(message: str) -> str:
    """The lines' text after their key=value pairs (which stay in the message, contract §3)."""
    words = message.split(" ")
    while words and "=" in words[0] and not words[0].startswith('"'):
        words.pop(0)
    return " ".join(words)


def _cli_args(part: str) -> list[str]:
    from urllib.parse import unquote_plus
    key, _, value = part.partition("=")
    if key == "order":
        return []
    return [f"--{key.replace('_', '-')}", unquote_plus(value)]


@pytest.mark.parametrize("query", [
    "min_level=bogus", "level=info,loud", "since=yesterday-ish", "until=2025-13-45",
    "message_regex=(unclosed", "message=%22unbalanced", "where=nosuchfield%3Dx", "where=justtext",
    "date=12%2F01%2F2025", "since=2025-12-02&until=2025-12-01",
])
def test_every_filter_error_is_400_with_the_cli_message(console, query):
    reply = api(console, "root").get(f"/api/v1/events?{query}")
    assert reply.status == 400
    error = reply.json()["error"]
    cli = run_cli("--collector", console.collector.address, "--token-file", console.token_files["root"],
                  "search", *_cli_args(query.split("&")[0]), *(_cli_args(query.split("&")[1]) if "&" in query else []))
    assert cli.returncode == 2
    assert error in cli.stderr, (error, cli.stderr)
    assert error.startswith("--")


@pytest.mark.parametrize(("query", "error"), [
    ("usr=alice", "unknown query parameter 'usr'"),
    ("limit=0", "limit: expected a number from 1 to 1000, got '0'"),
    ("order=sideways", "order: expected asc or desc, got 'sideways'"),
    ("_next=garbage", "_next: 'garbage' is not a paging token from a previous page"),
])
def test_console_parameters_are_checked_too(console, query, error):
    reply = api(console, "root").get(f"/api/v1/events?{query}")
    assert reply.status == 400 and reply.json()["error"].startswith(error)


@pytest.mark.parametrize(("query", "error"), [
    ("_next=99999999999999999999999.1", "_next: '99999999999999999999999.1' is not a paging token"),
    ("_next=1.99999999999999999999", "_next: '1.99999999999999999999' is not a paging token"),
    ("_next=" + "9" * 400 + ".1", "_next: '999"),
])
def test_out_of_range_paging_tokens_are_400_not_500(console, query, error):
    for path in ("/api/v1/events", "/events"):
        reply = api(console, "root").get(f"{path}?{query}")
        assert reply.status == 400, (path, reply.status, reply.text[:300])
        assert error in (reply.json()["error"] if path.startswith("/api/") else html.unescape(reply.text))
    assert "Traceback" not in console.collector.log()


@pytest.mark.parametrize(("path", "error"), [
    ("/api/v1/events?limit=%C2%B2", "limit: expected a number from 1 to 1000, got '²'"),
    ("/api/v1/histogram?buckets=%C2%B2", "buckets: expected a number from 1 to 500, got '²'"),
    ("/api/v1/follow?after_seq=%C2%B2", "after_seq: expected a sequence number, got '²'"),
])
def test_digits_that_are_not_numbers_are_400(console, path, error):
    """`²` passed str.isdigit() and then failed int(): a 500 with a traceback."""
    reply = api(console, "root").get(path)
    assert (reply.status, reply.json()) == (400, {"error": error})
    assert "Traceback" not in console.collector.log()


@pytest.mark.parametrize("date", ["9999-12-31+23:59:59", "9999-12-31", "9999-12", "9999"])
def test_the_last_dates_of_9999_are_an_empty_answer_not_500(console, date):
    for path in ("/api/v1/events", "/api/v1/histogram", "/events"):
        reply = api(console, "root").get(f"{path}?date={date}")
        assert reply.status == 200, (path, reply.status, reply.text[:300])
    assert api(console, "root").get(f"/api/v1/events?date={date}").json()["events"] == []
    assert "Traceback" not in console.collector.log()


def test_keyset_paging_walks_every_event_once_newest_first(console):
    client = api(console, "root")
    everything = client.get(f"/api/v1/events?limit=1000{APP}").json()["events"]
    assert len(everything) == len(WEB1_LINES) + len(WEB2_LINES) + len(PAY_LINES)
    pages, url = [], f"/api/v1/events?limit=3{APP}"
    while url:
        page = client.get(url).json()
        pages.append(page["events"])
        url = page.get("next_url")
    assert [len(p) for p in pages] == [3, 3, 3]
    assert [e["seq"] for p in pages for e in p] == [e["seq"] for e in everything]
    times = [e["time"] for e in everything]
    assert times == sorted(times, reverse=True)
    # Oldest first pages the other way.
    first = client.get(f"/api/v1/events?limit=4&order=asc{APP}").json()
    second = client.get(f"/api/v1/events?limit=4&order=asc&_next={first['next']}{APP}").json()
    assert [e["seq"] for e in first["events"] + second["events"]] == [e["seq"] for e in everything[::-1][:8]]


def test_namespace_auditor_sees_only_its_namespace_everywhere(console):
    client = api(console, "payaud")
    assert messages(client.get("/api/v1/events?limit=1000")) == [PAY_LINES[0].split(" ", 2)[2]]
    assert client.get("/api/v1/trace/req-7f3a").json()["events"] == []
    assert [e["user"] for e in client.get("/api/v1/trace/pay-1").json()["events"]] == ["dave"]
    hist = client.get("/api/v1/histogram?since=2025-12-01T10:00:00Z&until=2025-12-01T10:01:00Z").json()
    assert sum(sum(b["counts"].values()) for b in hist["buckets"]) == 1
    rows = list(csv.DictReader(io.StringIO(client.get("/api/v1/export?format=csv").text)))
    assert [r["host"] for r in rows] == ["pay-1"]
    assert client.get("/api/v1/events?namespace=default").json()["events"] == []


def test_searches_from_the_console_are_audited_with_via_web(console):
    reply = api(console, "audrey").get("/api/v1/events?user=carol&min_level=info")
    assert reply.status == 200
    audits = [e for e in console.cli_events("--action", "audit/search", "--user", "audrey")]
    assert audits and audits[-1]["fields"]["via"] == "web"
    assert audits[-1]["fields"]["filters"] == {"user": "carol", "min_level": "info"}
    assert audits[-1]["message"] == "search: --min-level='info' --user='carol'"
    assert audits[-1]["host"] == "collector-1" and audits[-1]["log_type"] == "audit"


# -- trace, status, histogram ----------------------------------------------------------------------

def test_trace_lists_the_steps_from_both_nodes_oldest_first(console):
    reply = api(console, "audrey").get("/api/v1/trace/req-7f3a")
    data = reply.json()
    assert [(e["host"], _strip_pairs(e["message"])) for e in data["events"]] == [
        ("web-1", "GET /cart started"), ("web-2", "api call"), ("web-1", "cart slow"), ("web-2", "api done")]
    assert [e["since_first_ms"] for e in data["events"]] == [0.0, 100.0, 200.0, 300.0]
    assert data["nodes"] == ["web-1", "web-2"]
    audit = console.cli_events("--action", "audit/search", "--user", "audrey")[-1]
    assert audit["fields"]["purpose"] == "trace" and audit["fields"]["via"] == "web"
    assert api(console, "audrey").get("/api/v1/trace/req-7f3a?x=1").status == 400
    # Any request id, slashes and spaces included, has a trace URL.
    assert api(console, "audrey").get("/api/v1/trace/a%2Fb%20c").json()["request_id"] == "a/b c"
    assert api(console, "audrey").get("/trace/a/b%20c").status == 200


def test_status_lists_nodes_chain_and_checkpoint(console):
    data = api(console, "audrey").get("/api/v1/status").json()
    assert data["collector"] == "collector-1" and data["event_count"] >= 9
    assert [n["name"] for n in data["nodes"]] == ["pay-1", "web-1", "web-2"]
    assert all(n["connected"] and isinstance(n["clock_skew_seconds"], float) for n in data["nodes"])
    assert data["chain_head"]["seq"] == data["last_seq"] and len(data["chain_head"]["link"]) == 64
    assert data["last_checkpoint"]["collector"] == "collector-1"
    assert data["next_purge"].endswith("Z")


def test_histogram_counts_by_level(console):
    reply = api(console, "root").get("/api/v1/histogram?since=2025-12-01T10:00:00Z&until=2025-12-01T10:00:06Z"
                                     "&buckets=6&log_type=application")
    buckets = reply.json()["buckets"]
    assert [sum(b["counts"].values()) for b in buckets] == [4, 1, 1, 1, 1, 1]
    assert buckets[0]["counts"]["warning"] == 1 and buckets[5]["counts"]["error"] == 1
    assert api(console, "root").get("/api/v1/histogram?buckets=0").status == 400


# -- notes ---------------------------------------------------------------------------------------------

def test_notes_by_role_with_csrf_for_cookies(console):
    reply = api(console, "audrey").post_json("/api/v1/notes", {"text": "checked the payment alerts"})
    assert reply.status == 201
    note = console.cli_events("--action", "Admin.EventLog.Note", "--user", "audrey")[-1]
    assert note["seq"] == reply.json()["seq"] and note["message"] == "checked the payment alerts"
    assert note["tier"] == "security" and note["fields"]["author"] == "audrey"
    assert api(console, "payaud").post_json("/api/v1/notes", {"text": "x"}).status == 403
    assert api(console, "root").post_json("/api/v1/notes", {"text": "  "}).json() == {"error": "note text is empty"}
    assert api(console, "root").request("POST", "/api/v1/notes", b"{nope",
                                        {"Content-Type": "application/json"}).status == 400
    # A signed-in browser must send the session's CSRF token.
    browser = Http(console.base)
    assert browser.post_form("/signin", {"token": console.tokens["root"], "next": "/events"}).status == 303
    reply = browser.post_json("/api/v1/notes", {"text": "forged"})
    assert reply.status == 403 and "CSRF" in reply.json()["error"]
    page = browser.get("/events").text
    csrf = page.split('data-csrf="', 1)[1].split('"', 1)[0]
    assert browser.post_json("/api/v1/notes", {"text": "from the page"}, {"X-CSRF-Token": csrf}).status == 201


# -- sign-in and sessions --------------------------------------------------------------------------

def test_sign_in_cookie_sign_out_and_slowed_failures(console):
    browser = Http(console.base)
    reply = browser.post_form("/signin", {"token": console.tokens["audrey"], "next": "/status"})
    assert reply.status == 303 and reply.headers["Location"] == "/status"
    set_cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Max-Age=28800" in set_cookie
    assert "Secure" not in set_cookie   # plain HTTP on loopback; see the TLS test
    assert console.tokens["audrey"] not in set_cookie
    assert browser.get("/api/v1/status").status == 200
    assert "audrey (auditor)" in browser.get("/events").text
    # An open redirect is not possible through `next`.
    assert Http(console.base).post_form("/signin", {"token": console.tokens["audrey"],
                                                    "next": "//evil.example/"}).headers["Location"] == "/events"
    # Sign-out needs the CSRF token, then the session is gone on the server.
    assert browser.post_form("/signout", {}).status == 403
    csrf = browser.get("/events").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert browser.post_form("/signout", {"csrf": csrf}).status == 303
    assert browser.get("/api/v1/status").status == 401
    # Agents cannot sign in; wrong tokens are refused, audited and slowed down. From an address of
    # its own: the denials the other tests' requests from 127.0.0.1 caused within the last 10 s
    # count against that address's budget of recorded denials, not this one's.
    failing = Http(console.base, source="127.0.0.3")
    assert failing.post_form("/signin", {"token": console.tokens["web-1"]}).status == 401
    started = time.monotonic()
    reply = failing.post_form("/signin", {"token": "guessed-4d1f7c"})
    assert reply.status == 401 and "sign-in failed: unknown token" in reply.text
    assert time.monotonic() - started >= 0.9   # the second failure in a row waits at least 1 s
    denials = [e["message"] for e in console.cli_events("--action", "audit/denied")]
    assert "denied web sign-in for unauthenticated peer: unknown token" in denials
    assert "denied web sign-in for web-1 (agent): role 'agent' may not use the console" in denials
    assert "guessed-4d1f7c" not in json.dumps(console.cli_events("--action", "audit/denied"))


@pytest.mark.parametrize("target", ["/\t/evil.example/x", "/%09/evil.example/x", "/\\evil.example",
                                    "/%5C%5Cevil.example", "/%2F/evil.example", "/\n/evil.example", "https://evil.example/"])
def test_sign_in_goes_only_to_a_path_of_this_site(console, target):
    """`next=/%09/evil.example/x` passed: a browser drops the tab and follows `//evil.example/x`."""
    from urllib.parse import quote
    page = Http(console.base).get("/signin?next=" + quote(target, safe=""))
    assert page.status == 200 and '<input type="hidden" name="next" value="/events">' in page.text
    reply = Http(console.base).post_form("/signin", {"token": console.tokens["audrey"], "next": target})
    assert reply.status == 303 and reply.headers["Location"] == "/events"
    # A path of this site with its query string still follows the sign-in.
    reply = Http(console.base).post_form("/signin", {"token": console.tokens["audrey"], "next": "/status?x=a%20b"})
    assert reply.headers["Location"] == "/status?x=a%20b"


def test_security_headers_and_content_as_text(console):
    reply = api(console, "root").get("/events?user=mallory")
    csp = reply.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert reply.headers["X-Content-Type-Options"] == "nosniff" and reply.headers["X-Frame-Options"] == "DENY"
    assert XSS_SCRIPT not in reply.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in reply.text
    assert "<img src=x" not in reply.text and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in reply.text
    assert "<script>" not in reply.text.replace('<script src="/static/events.js" defer></script>', "")


# -- export, bundle, follow, OpenAPI ---------------------------------------------------------------

def test_exports_in_every_format_match_the_cli(console, tmp_path):
    client = api(console, "root")
    reply = client.get("/api/v1/export?format=csv&user=alice")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/csv")
    assert reply.headers["Content-Disposition"].startswith('attachment; filename="fleetlog_export_')
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert [_strip_pairs(r["message"]) for r in rows] == ["GET /cart started", "api call", "cart slow", "api done"]
    cli_out = tmp_path / "cli.csv"
    assert run_cli("--collector", console.collector.address, "--token-file", console.token_files["root"],
                   "export", "--format", "csv", "--out", str(cli_out), "--user", "alice").returncode == 0
    assert cli_out.read_bytes() == reply.body
    jsonl = client.get("/api/v1/export?format=jsonl&user=alice&columns=seq,host,message").text.splitlines()
    assert [sorted(json.loads(line)) for line in jsonl] == [["host", "message", "seq"]] * 4
    xlsx = tmp_path / "x.xlsx"
    xlsx.write_bytes(client.get("/api/v1/export?format=xlsx&user=bob").body)
    sheet = openpyxl.load_workbook(xlsx).active
    header = [c.value for c in sheet[1]]
    assert sheet.max_row == 2 and sheet.cell(2, header.index("user") + 1).value == "bob"
    pdf = client.get("/api/v1/export?format=pdf&user=bob")
    assert pdf.headers["Content-Type"] == "application/pdf" and pdf.body.startswith(b"%PDF")
    assert client.get("/api/v1/export?format=doc").json()["error"].startswith("format: expected one of csv")
    assert client.get("/api/v1/export?format=csv&columns=nope").json()["error"].startswith("columns: unknown column 'nope'")
    assert client.get("/api/v1/export?format=csv&level=loud").status == 400
    audit = console.cli_events("--action", "audit/search", "--user", "root")
    assert any(a["fields"]["purpose"] == "export" and a["fields"]["via"] == "web" for a in audit)


def test_bundle_download_verifies(console, tmp_path):
    reply = api(console, "root").get("/api/v1/bundle?host=web-1")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/gzip"
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(reply.body)
    with tarfile.open(path) as tar:
        assert sorted(tar.getnames()) == ["digests.txt", "events.jsonl", "manifest.json", "signing.pub"]
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["counts"]["events"] == len(WEB1_LINES) and manifest["filters"] == {"host": "web-1"}
    assert manifest["attestation"] is not None
    result = run_cli("verify", "--bundle", str(path))
    assert result.returncode == 0 and result.stdout.startswith(f"OK: {len(WEB1_LINES)} events"), result


def test_follow_streams_new_matches_as_server_sent_events(console):
    request = urllib.request.Request(f"{console.base}/api/v1/follow?action=Admin.EventLog.Note",
                                     headers={"Authorization": f"Bearer {console.tokens['root']}"})
    received: list[dict] = []
    with urllib.request.urlopen(request, timeout=30) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert stream.readline().startswith(b"event: start")

        def read() -> None:
            for line in stream:
                if line.startswith(b"data: ") and "message" in (event := json.loads(line[6:])):
                    received.append(event)
                    return
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert api(console, "root").post_json("/api/v1/notes", {"text": "live one"}).status == 201
        wait_for(lambda: received, 20, "the note followed live")
    assert received[0]["message"] == "live one" and received[0]["action"] == "Admin.EventLog.Note"
    assert api(console, "root").get("/api/v1/follow?after_seq=x").status == 400


def test_openapi_document_names_every_route_and_filter(console):
    reply = Http(console.base).get("/api/v1/openapi.json")
    doc = reply.json()
    assert doc["openapi"].startswith("3.")
    assert {"/api/v1/events", "/api/v1/trace/{request_id}", "/api/v1/status", "/api/v1/notes",
            "/api/v1/export"} <= set(doc["paths"])
    names = [p["name"] for p in doc["paths"]["/api/v1/events"]["get"]["parameters"]]
    assert {"request_id", "min_level", "since", "until", "host", "user", "message", "message_regex",
            "where", "level", "date", "_next", "limit"} <= set(names)
    assert doc["paths"]["/api/v1/notes"]["post"]


def test_html_pages_render_for_a_reader(console):
    client = api(console, "audrey")
    for path in ("/events", "/events?user=alice&level=warning", "/trace/req-7f3a", "/status"):
        reply = client.get(path)
        assert reply.status == 200, (path, reply.text[:200])
    page = client.get("/events?min_level=bogus")
    assert page.status == 400 and "--min-level: unknown level &#39;bogus&#39;" in page.text
    assert client.get("/notes").headers["Location"] == "/events?action=Admin.EventLog.Note"


def test_console_over_tls_sets_secure_cookies(cluster, tmp_path: pathlib.Path):
    import ssl

    from tests.certs import TestCA
    ca = TestCA(tmp_path / "ca")
    server = ca.issue("collector-1", server=True, dns=["localhost", "logs.internal.example"])
    console = start_console(cluster, tmp_path, agent_overrides={"tls": {"ca": str(ca.ca_path)}},
                            tls={"cert": server.cert, "key": server.key, "ca": str(ca.ca_path)})
    context = ssl.create_default_context(cafile=str(ca.ca_path))
    client = Http(console.base, context=context)
    reply = client.post_form("/signin", {"token": console.tokens["root"]})
    assert reply.status == 303 and "Secure" in reply.headers["Set-Cookie"]
    assert client.get("/api/v1/status").json()["collector"] == "collector-1"
    # The certificate's names are the console's names too; another name is refused (DNS rebinding).
    assert client.get("/api/v1/status", headers={"Host": "logs.internal.example:443"}).status == 200
    assert client.get("/api/v1/status", headers={"Host": "attacker.example"}).status == 421


def test_client_certificate_signs_in_with_its_tokens_file_role(cluster, tmp_path: pathlib.Path):
    import ssl

    from tests.certs import TestCA
    from tests.harness import free_port, write_toml
    from tests.web_console import write_tokens
    ca = TestCA(tmp_path / "ca")
    server = ca.issue("collector-1", server=True)
    tokens_file, tokens, _ = write_tokens(tmp_path)
    table = write_toml(tmp_path / "tokens-mtls.toml", {"tokens": [
        *__import__("tomllib").loads(pathlib.Path(tokens_file).read_text())["tokens"],
        {"name": "ops-laptop", "sha256": "0" * 64, "role": "auditor", "namespaces": []}]})
    port = free_port()
    cluster.collector(tokens_file=str(table), web={"listen": f"127.0.0.1:{port}"},
                      tls={"cert": server.cert, "key": server.key, "ca": str(ca.ca_path), "require_client_cert": True})

    def client(cert) -> Http:
        context = ssl.create_default_context(cafile=str(ca.ca_path))
        if cert is not None:
            context.load_cert_chain(cert.cert, cert.key)
        return Http(f"https://127.0.0.1:{port}", context=context)

    ops = client(ca.issue("ops-laptop"))
    assert ops.get("/api/v1/status").status == 200       # the certificate alone identifies the caller
    assert ops.get("/api/v1/events?user=x").status == 200
    reply = ops.post_form("/signin", {"token": ""})         # and signs in without a token
    assert reply.status == 303 and "Secure" in reply.headers["Set-Cookie"]
    assert "ops-laptop (auditor)" in ops.get("/events").text
    assert client(None).get("/api/v1/status").status == 401
    node = client(ca.issue("web-9"))                        # a node's certificate: role agent
    assert node.get("/api/v1/status").json() == {"error": "role 'agent' may not use the console"}
    assert client(None).request("GET", "/api/v1/status", headers={
        "Authorization": f"Bearer {tokens['audrey']}"}).status == 200


def test_console_port_in_use_is_a_one_line_config_error(cluster):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        collector = cluster.collector(start=False, web={"listen": f"127.0.0.1:{port}"})
        collector.start()
        assert collector.process.wait(30) == 2
    log = collector.log()
    assert f"collector.toml: web.listen: cannot listen on 127.0.0.1:{port}" in log and "Traceback" not in log


def test_status_shows_each_forwarders_last_error_and_keeps_it_after_recovery(cluster):
    siem_port = free_port()                     # nothing listens there yet: deliveries fail
    web_port = free_port()
    cluster.collector(web={"listen": f"127.0.0.1:{web_port}"}, forwarders=[
        {"name": "siem", "type": "jsonl", "host": "127.0.0.1", "port": siem_port}])
    status = lambda: Http(f"http://127.0.0.1:{web_port}").get("/api/v1/status").json()["forwarders"]
    [failing] = wait_for(lambda: (f := status()) and f[0]["state"].startswith("failing") and f, 30,
                         "the forwarder failing")
    assert failing["name"] == "siem" and "refused" in failing["last_error"].lower()
    assert failing["last_error_at"].endswith("Z")
    page = Http(f"http://127.0.0.1:{web_port}").get("/status").text
    assert failing["last_error"] in html.unescape(page)
    # The SIEM comes up: the forwarder recovers, and the status still says what went wrong last.
    with socket.create_server(("127.0.0.1", siem_port)) as siem:
        siem.settimeout(30)
        conn, _ = siem.accept()
        with conn:
            [ok] = wait_for(lambda: (f := status()) and f[0]["state"] == "ok" and f, 30, "the forwarder recovered")
    # The last failure before the recovery: the one read above, or a later retry's (they kept
    # failing, at a growing backoff, until the SIEM listened).
    assert "refused" in ok["last_error"].lower() and ok["last_error_at"] >= failing["last_error_at"]


# -- namespace isolation ---------------------------------------------------------------------------

def test_status_shows_a_namespace_role_only_its_nodes_and_nothing_global(console):
    """Status (page, API and gRPC) showed a namespace role every node, global counts and forwarder
    errors."""
    data = api(console, "payaud").get("/api/v1/status").json()
    assert [n["name"] for n in data["nodes"]] == ["pay-1"]
    assert data["scoped"] is True and data["collector"] == "collector-1"
    assert (data["storage_bytes"], data["event_count"], data["last_seq"], data["chain_head"],
            data["last_checkpoint"], data["forwarders"]) == (None, None, None, None, None, [])
    page = api(console, "payaud").get("/status").text
    assert "pay-1" in page and "web-1" not in page and "chain head" not in page
    assert [n["name"] for n in api(console, "defaud").get("/api/v1/status").json()["nodes"]] == ["web-1", "web-2"]
    # Over gRPC (`fleetlog status`) the same.
    result = run_cli("--collector", console.collector.address, "--token-file", console.token_files["payaud"],
                     "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert [n["name"] for n in reply["nodes"]] == ["pay-1"] and reply["scoped"] is True
    assert "event_count" not in reply and "forwarders" not in reply and "collectors" not in reply
    text = run_cli("--collector", console.collector.address, "--token-file", console.token_files["payaud"],
                   "status").stdout
    assert "only admin and auditor see the whole store" in text and "web-1" not in text
    # Admin and auditor see everything.
    whole = api(console, "audrey").get("/api/v1/status").json()
    assert whole["scoped"] is False and whole["event_count"] >= 9 and len(whole["nodes"]) == 3


def test_the_collectors_audit_trail_is_out_of_reach_of_namespace_roles(console):
    """Collector-made events went to `default`: a role on default read everyone's audit trail,
    other users' filter values included."""
    assert api(console, "payaud").get("/api/v1/events?user=secret-guess-31").status == 200
    for who in ("defaud", "payaud", "both"):
        client = api(console, who)
        for action in ("audit/search", "audit/denied", "Collector.Start"):
            assert client.get(f"/api/v1/events?action={action}").json()["events"] == [], (who, action)
        assert "secret-guess-31" not in client.get("/api/v1/events?limit=1000").text
    audits = console.cli_events("--action", "audit/search", "--user", "payaud")
    assert audits and {e["namespace"] for e in audits} == {"_collector"}
    assert api(console, "audrey").get("/api/v1/events?namespace=_collector&action=audit/search&user=payaud"
                                      ).json()["events"]


def test_a_note_lands_in_its_authors_namespace(console):
    """A namespace-admin's note landed in `default`."""
    reply = api(console, "payadm").post_json("/api/v1/notes", {"text": "payments checked"})
    assert reply.status == 201, reply.text
    [note] = [e for e in console.cli_events("--action", "Admin.EventLog.Note", "--user", "payadm")]
    assert (note["namespace"], note["seq"]) == ("payments", reply.json()["seq"])
    assert [e["message"] for e in api(console, "payaud").get("/api/v1/events?action=Admin.EventLog.Note"
                                                              ).json()["events"]] == ["payments checked"]
    assert "payments checked" not in api(console, "defaud").get("/api/v1/events?action=Admin.EventLog.Note").text
    # A namespace the author does not hold, or the collector's own: refused and audited.
    reply = api(console, "payadm").post_json("/api/v1/notes", {"text": "x", "namespace": "default"})
    assert reply.status == 403 and reply.json() == {"error": "may not write notes into namespace 'default'"}
    reply = api(console, "root").post_json("/api/v1/notes", {"text": "x", "namespace": "_collector"})
    assert reply.status == 403 and "_collector" in reply.json()["error"]
    # Several namespaces: the note names one.
    reply = api(console, "both").post_json("/api/v1/notes", {"text": "x"})
    assert reply.status == 400 and reply.json()["error"] == (
        "namespace: both holds several namespaces (default, payments); name the note's")
    assert api(console, "both").post_json("/api/v1/notes", {"text": "both: payments",
                                                              "namespace": "payments"}).status == 201
    page = api(console, "both").get("/events").text   # the page offers the author's namespaces
    assert '<option value="default">default</option><option value="payments">payments</option>' in page
    assert 'id="note-namespace"' not in api(console, "payadm").get("/events").text
    # An admin's note goes to default unless it names another; the CLI names it with --namespace.
    assert api(console, "root").post_json("/api/v1/notes", {"text": "root note"}).status == 201
    result = run_cli("--collector", console.collector.address, "--token-file", console.token_files["root"],
                     "note", "--namespace", "payments", "root about payments")
    assert result.returncode == 0, result.stderr
    result = run_cli("--collector", console.collector.address, "--token-file", console.token_files["payadm"],
                     "note", "--namespace", "default", "sneaky")
    assert result.returncode == 1 and "may not write notes into namespace 'default'" in result.stderr
    placed = {e["message"]: e["namespace"] for e in console.cli_events("--action", "Admin.EventLog.Note")}
    assert placed["root note"] == "default" and placed["root about payments"] == "payments"
    assert placed["both: payments"] == "payments" and "sneaky" not in placed


def test_nobody_writes_the_collectors_namespace_and_no_token_holds_it(cluster, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write = tmp_path / "logs" / "app.log"
    write.write_text("2025-12-01T10:00:00Z INFO Collector.Start forged\n")
    collector = cluster.collector()   # trusted loopback: an agent may write any namespace but this one
    cluster.agent("forger", [collector], [{"type": "file", "paths": [str(write)]}], namespace="_collector")
    wait_for(lambda: collector.metric("fleetlog_collector_events_dropped_total", {"reason": "namespace_denied"}) == 1,
             30, "the forged event refused")
    assert search_json(collector, "--host", "forger") == []
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[[tokens]]\nname = "x"\nsha256 = "' + "0" * 64 + '"\nrole = "namespace-auditor"\n'
                      'namespaces = ["_collector"]\n')
    bad = cluster.collector("collector-2", start=False, tokens_file=str(tokens))
    bad.start()
    assert bad.process.wait(30) == 2
    assert ("tokens[0].namespaces: '_collector' holds the collector's own events, which only admin and auditor "
            "read; no token may list it") in bad.log()
