"""DNS rebinding against the console: a page on attacker.example whose name resolves to 127.0.0.1
reaches the loopback console through the browser, which sends `Host: attacker.example`. With no
tokens (the `make run` setup) that request was answered with events, a session and a CSRF token.
The console answers only its own names (collector/web/hosts.py)."""

from __future__ import annotations

import http.client

from tests.harness import free_port
from tests.web_console import Http


def test_a_foreign_host_gets_421_and_nothing_else_on_an_open_console(cluster):
    port = free_port()
    cluster.collector(web={"listen": f"127.0.0.1:{port}", "allowed_hosts": ["logs.example.com", "*.corp.example"]})
    owner = Http(f"http://127.0.0.1:{port}")
    csrf = owner.get("/events").text.split('data-csrf="', 1)[1].split('"', 1)[0]
    assert owner.post_json("/api/v1/notes", {"text": "only for the machine's own users"},
                           {"X-CSRF-Token": csrf}).status == 201
    browser = Http(f"http://127.0.0.1:{port}")
    for path in ("/api/v1/events", "/events", "/status", "/signin", "/static/console.css", "/api/v1/openapi.json"):
        reply = browser.get(path, headers={"Host": f"attacker.example:{port}"})
        assert reply.status == 421, (path, reply.status)
        assert "Set-Cookie" not in reply.headers and b"only for the machine" not in reply.body
        assert "this console does not answer to host 'attacker.example:" in reply.text
    assert browser.get("/api/v1/events", headers={"Host": "attacker.example"}).json() == {
        "error": "this console does not answer to host 'attacker.example' (add it to [web] allowed_hosts)"}
    assert browser.post_json("/api/v1/notes", {"text": "x"}, headers={"Host": "attacker.example"}).status == 421
    assert not list(browser.jar)
    # Its own names, and the configured ones, are answered.
    for host in (f"127.0.0.1:{port}", "localhost", f"localhost:{port}", "collector-1", "logs.example.com",
                 "a.corp.example:8443"):
        reply = browser.get("/api/v1/events?action=Admin.EventLog.Note", headers={"Host": host})
        assert reply.status == 200, (host, reply.text)
        assert [e["message"] for e in reply.json()["events"]] == ["only for the machine's own users"]
    assert browser.get("/events", headers={"Host": "b.a.corp.example"}).status == 421
    # No Host header at all: refused too (by aiohttp's parser, or else by the check).
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("GET", "/api/v1/events", skip_host=True)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status in (400, 421) and b"only for the machine" not in response.read()
    connection.close()


def test_a_bad_allowed_hosts_entry_stops_the_collector_with_one_line(cluster):
    collector = cluster.collector(start=False, web={"listen": f"127.0.0.1:{free_port()}",
                                                    "allowed_hosts": ["https://logs.example.com/"]})
    collector.start()
    assert collector.process.wait(30) == 2
    assert ("collector.toml: web.allowed_hosts[0]: expected a host name or IP address (no scheme, port or path), "
            "got 'https://logs.example.com/'") in collector.log()
    assert "Traceback" not in collector.log()
