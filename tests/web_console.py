"""A collector with its web console, tokens of every role, and three real agents shipping known
lines from two namespaces — shared by the console's API and browser tests.

Also a tiny HTTP client over urllib (status, headers, body; cookies kept per client) so the
tests speak to the console the way any HTTP client does.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import http.cookiejar
import json
import pathlib
import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

from tests.harness import ROOT, Cluster, Daemon, free_port, search_json, wait_for, write_lines, write_toml

CHROMIUM = "/usr/bin/chromium"   # Debian's; `playwright install` is not used
SCREENSHOTS = ROOT / "var" / "screenshots"
BROWSER_TIMEOUT_MS = 20_000

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'

WEB1_LINES = [
    "2025-12-01T10:00:00.000Z INFO req=req-7f3a user=alice GET /cart started",
    "2025-12-01T10:00:00.200Z WARNING req=req-7f3a user=alice cart slow",
    "2025-12-01T10:00:01.000Z ERROR req=req-9b1c user=bob payment failed",
    "2025-12-01T10:00:02.000Z INFO user=carol login ok",
    f"2025-12-01T10:00:03.000Z ERROR user=mallory {XSS_SCRIPT}",
    f"2025-12-01T10:00:04.000Z WARNING user=mallory {XSS_IMG}",
]
WEB2_LINES = [
    "2025-12-01T10:00:00.100Z INFO req=req-7f3a user=alice api call",
    "2025-12-01T10:00:00.300Z INFO req=req-7f3a user=alice api done",
]
PAY_LINES = ["2025-12-01T10:00:05.000Z ERROR req=pay-1 user=dave card declined"]

# name, role, namespaces
TOKENS = [
    ("web-1", "agent", ["default"]), ("web-2", "agent", ["default"]), ("pay-1", "agent", ["payments"]),
    ("root", "admin", []), ("audrey", "auditor", []), ("payaud", "namespace-auditor", ["payments"]),
    ("payadm", "namespace-admin", ["payments"]), ("defaud", "namespace-auditor", ["default"]),
    ("both", "namespace-admin", ["default", "payments"]),
]


@dataclass
class Console:
    collector: Daemon
    web_port: int
    tokens: dict[str, str]          # name -> the token itself
    token_files: dict[str, str]     # name -> path of a file holding it
    logs: dict[str, pathlib.Path]   # agent name -> its log file
    scheme: str = "http"
    cli_options: list[str] = field(default_factory=list)   # e.g. --ca for a TLS collector

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.web_port}"

    def cli_events(self, *args: str) -> list[dict[str, Any]]:
        return search_json(self.collector, "--token-file", self.token_files["root"], *self.cli_options, *args)


def write_tokens(folder: pathlib.Path) -> tuple[str, dict[str, str], dict[str, str]]:
    table, tokens, files = [], {}, {}
    for name, role, namespaces in TOKENS:
        token = secrets.token_urlsafe(24)
        table.append({"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(), "role": role,
                      "namespaces": namespaces})
        tokens[name] = token
        path = folder / f"{name}.token"
        path.write_text(token + "\n")
        files[name] = str(path)
    return str(write_toml(folder / "tokens.toml", {"tokens": table})), tokens, files


def start_console(cluster: Cluster, folder: pathlib.Path, agent_overrides: dict[str, Any] | None = None,
                  **collector_overrides: Any) -> Console:
    """The collector with [web], and agents web-1, web-2 (namespace default) and pay-1 (payments),
    each with its known lines stored before this returns."""
    tokens_file, tokens, files = write_tokens(folder)
    web_port = free_port()
    collector = cluster.collector(tokens_file=tokens_file, web={"listen": f"127.0.0.1:{web_port}"},
                                  **collector_overrides)
    logs = {}
    for name, lines, namespace in (("web-1", WEB1_LINES, "default"), ("web-2", WEB2_LINES, "default"),
                                   ("pay-1", PAY_LINES, "payments")):
        log_dir = folder / f"logs-{name}"
        log_dir.mkdir()
        logs[name] = log_dir / "app.log"
        write_lines(logs[name], lines)
        cluster.agent(name, [collector], [{"type": "file", "paths": [str(log_dir / "*.log")]}],
                      token_file=files[name], namespace=namespace, **(agent_overrides or {}))
    console = Console(collector, web_port, tokens, files, logs)
    if collector_overrides.get("tls"):
        console.scheme = "https"
        console.cli_options = ["--ca", collector_overrides["tls"]["ca"]]
    expected = len(WEB1_LINES) + len(WEB2_LINES) + len(PAY_LINES)
    wait_for(lambda: len(console.cli_events("--log-type", "application")) == expected, 30, "agents' lines stored")
    return console


@contextlib.contextmanager
def chromium(fresh_screenshots: tuple[str, ...]) -> Iterator[Browser]:
    """Headless Chromium for a test module; the screenshots it will take are removed first, so a
    check that they were written sees this run's."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name in fresh_screenshots:
        (SCREENSHOTS / name).unlink(missing_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, timeout=BROWSER_TIMEOUT_MS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def browser_page(browser: Browser, **options: Any) -> Iterator[Page]:
    """A page in a fresh context (no cookies); the messages of dialogs (alert, confirm) it opens
    are kept in `page.dialogs`, each accepted (a confirmation answered yes)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, **options)
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.dialogs = dialogs   # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _FromAddress(urllib.request.HTTPHandler):
    """Plain HTTP from a chosen loopback source address (127.0.0.x): the console keeps its
    per-address budgets (denials recorded, failed sign-ins) apart for each."""

    def __init__(self, source: str):
        super().__init__()
        self.source = source

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(http.client.HTTPConnection, source_address=(self.source, 0)), req)


@dataclass
class Http:
    """One HTTP client: its own cookie jar (a browser's session), no automatic redirects."""

    base: str
    token: str | None = None
    context: ssl.SSLContext | None = None
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)
    source: str | None = None   # a loopback source address of its own, e.g. "127.0.0.3"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> Reply:
        all_headers = dict(headers or {})
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        handlers: list[Any] = [_NoRedirect(), urllib.request.HTTPCookieProcessor(self.jar)]
        if self.context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.context))
        if self.source is not None:
            handlers.append(_FromAddress(self.source))
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=all_headers)
        try:
            with opener.open(request, timeout=timeout) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.headers, exc.read())

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post_json(self, path: str, data: Any, headers: dict[str, str] | None = None) -> Reply:
        return self.request("POST", path, json.dumps(data).encode(),
                            {"Content-Type": "application/json", **(headers or {})})

    def post_form(self, path: str, data: dict[str, str]) -> Reply:
        from urllib.parse import urlencode
        return self.request("POST", path, urlencode(data).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def cookie(self, name: str) -> http.cookiejar.Cookie | None:
        return next((c for c in self.jar if c.name == name), None)
