"""The /settings page (contract §9) in a real browser (Debian's headless Chromium driven by
Playwright) against a real collector and agents: a TLS syslog forwarder added from the form
delivers its test event to a real rsyslog; a namespace's minimum level raised on the page drops
the events below it; a token created on the page works from the CLI until it is revoked on the
page; a namespace-admin neither sees nor changes another namespace's settings. Writes the three
tabs' screenshots to var/screenshots/ (`make docs-screenshots` copies them into docs/)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
import types
import typing

import pytest
from playwright.sync_api import Page

from fleetlog.collector.forward import ForwarderConfig
from fleetlog.common.config import Flatten
from tests.certs import TestCA
from tests.harness import Cluster, free_port, run_cli, wait_for, write_lines
from tests.rsyslog_receiver import RsyslogReceiver
from tests.web_console import SCREENSHOTS, XSS_IMG, XSS_SCRIPT, Console, Http, Reply, start_console

SCREENSHOT_NAMES = ("settings-forwarders.png", "settings-namespaces.png", "settings-access.png")
APPLIED_WITHIN = 30   # seconds to poll for; the settings layer applies a change within 5 s


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    ca = TestCA(tmp_path_factory.mktemp("settings-ca"))
    return ca.issue("rsyslog", server=True), ca.issue("collector-1")


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory, tls_pair):
    server, _ = tls_pair
    receiver = RsyslogReceiver(tmp_path_factory.mktemp("settings-rsyslog"), tls=server).start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """The shared console, plus a forwarder and a namespace's retention defined in collector.toml
    (read-only on the page)."""
    folder = tmp_path_factory.mktemp("settings-console")
    cluster = Cluster(folder)
    # A console forwarder: no machine path on the screenshots.
    archive = {"name": "archive", "type": "console", "include": [{"field": "namespace", "pattern": "default"}]}
    try:
        yield start_console(cluster, folder, forwarders=[archive],
                            retention={"namespaces": {"staging": {"general": "7d"}}})
    finally:
        cluster.stop_all()


def api(console: Console, who: str = "root") -> Http:
    return Http(console.base, token=console.tokens[who])


def put_json(client: Http, path: str, body: dict[str, typing.Any]) -> Reply:
    return client.request("PUT", path, json.dumps(body).encode(), {"Content-Type": "application/json"})


def open_settings(page: Page, console: Console, who: str, tab: str) -> None:
    page.goto(f"{console.base}/settings#{tab}")
    assert "/signin" in page.url
    page.fill("#token", console.tokens[who])
    page.click("#signin")
    page.wait_for_url("**/settings*")
    page.click(f"#tab-{tab}")
    page.wait_for_selector(f"#panel-{tab} tbody tr:not(:has-text('Loading'))")


def column(page: Page, table: str, class_name: str) -> list[str]:
    """One column's texts; for names, the name without its badge."""
    cells = f"#{table} tbody td.name .value" if class_name == "name" else f"#{table} tbody td.{class_name}"
    return [text.strip() for text in page.locator(cells).all_inner_texts()]


def row(page: Page, table: str, name: str) -> str:
    """The row of one entry (data-name / data-namespace), as a selector."""
    attribute = "data-namespace" if table == "namespaces" else "data-name"
    return f"#{table} tbody tr[{attribute}={json.dumps(name)}]"


def fill_forwarder_form(page: Page, values: dict[str, str]) -> None:
    for selector, value in values.items():
        if page.locator(selector).evaluate("e => e.tagName") == "SELECT":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)


def test_add_a_tls_syslog_forwarder_from_the_form_and_send_a_test_event_to_rsyslog(page, console, rsyslog,
                                                                                   tls_pair):
    server, client = tls_pair
    open_settings(page, console, "root", "forwarders")
    assert page.inner_text("#nav-settings") == "Settings"
    # The forwarder of collector.toml is shown, marked, and offers no edit or remove.
    archive = row(page, "forwarders", "archive")
    assert page.inner_text(f"{archive} td.name .badge") == "from collector.toml"
    assert page.locator(f"{archive} button.edit, {archive} button.remove").count() == 0

    page.click("#forwarder-add")
    form = {"#fw-name": "siem-tls", "#fw-type": "syslog", "#fw-host": "127.0.0.1", "#fw-port": "70000",
            "#fw-protocol": "tls", "#fw-format": "rfc5424", "#fw-facility": "local4", "#fw-app-name": "fleetlog-page",
            "#fw-tls-ca": server.ca, "#fw-tls-cert": client.cert, "#fw-tls-key": client.key,
            "#fw-min-level": "warning",
            # Matches no stored event: the one event rsyslog gets is the test event.
            "#fw-include": "host=no-such-host-*"}
    fill_forwarder_form(page, form)
    page.check("#fw-action-create")
    page.check("#fw-action-delete")
    # A refused body: the page shows the API's own message, and nothing is added.
    page.click("#forwarder-save")
    page.wait_for_selector("#forwarder-form-error:not([hidden])")
    refused = api(console).post_json("/api/v1/settings/forwarders", {
        "name": "siem-tls", "type": "syslog", "enabled": True, "host": "127.0.0.1", "port": 70000, "protocol": "tls",
        "format": "rfc5424", "facility": "local4", "app_name": "fleetlog-page",
        "tls": {"ca": server.ca, "cert": client.cert, "key": client.key}, "min_level": "warning",
        "actions": ["create", "delete"], "include": [{"field": "host", "pattern": "no-such-host-*"}]})
    assert refused.status == 400
    assert page.inner_text("#forwarder-form-error") == refused.json()["error"]
    assert page.locator(row(page, "forwarders", "siem-tls")).count() == 0

    page.fill("#fw-port", str(rsyslog.tls_port))
    page.click("#forwarder-save")
    siem = row(page, "forwarders", "siem-tls")
    page.wait_for_selector(siem)
    assert page.inner_text(f"{siem} td.destination") == f"tls://127.0.0.1:{rsyslog.tls_port}"
    assert page.inner_text(f"{siem} td.filters") == ("≥ warning; actions create, delete; "
                                                     "include host=no-such-host-*")
    assert page.inner_text(f"{siem} td.changed").startswith("root via web, ")
    stored = api(console).get("/api/v1/settings/forwarders/siem-tls").json()
    assert (stored["protocol"], stored["port"], stored["facility"], stored["app_name"], stored["tls"]["ca"]) == (
        "tls", rsyslog.tls_port, "local4", "fleetlog-page", server.ca)

    page.click(f"{siem} button.test")
    page.wait_for_selector("#forwarders-message:has-text('delivered')")
    assert page.is_hidden("#forwarders-error")
    answer = page.inner_text("#forwarders-message")
    assert answer.startswith("siem-tls (") and answer.endswith("): delivered: the destination accepted the event")
    received = rsyslog.wait_received("tls", 1)
    assert len(received) == 1
    assert received[0]["msg"] == "fleetlog test event: forwarder siem-tls on collector collector-1, sent by root"
    assert received[0]["msgid"] == "settings/forwarders.test"
    assert int(received[0]["pri"]) == 20 * 8 + 5     # local4, notice
    page.screenshot(path=str(SCREENSHOTS / "settings-forwarders.png"), full_page=True)

    # Disable, then remove: the row says so, then is gone.
    page.click(f"{siem} button.toggle")
    page.wait_for_selector(f"{siem} td.state:text-is('disabled')")
    assert api(console).get("/api/v1/settings/forwarders/siem-tls").json()["enabled"] is False
    page.click(f"{siem} button.remove")
    page.wait_for_selector(siem, state="detached")
    assert page.dialogs == ["Remove the forwarder siem-tls? Events not yet delivered to it are not sent."]
    assert api(console).get("/api/v1/settings/forwarders/siem-tls").status == 404


def payments_messages(console: Console) -> list[str]:
    return [e["message"] for e in console.cli_events("--namespace", "payments", "--log-type", "application")]


def test_raise_a_namespace_minimum_level_on_the_page_and_see_events_below_it_dropped(page, console):
    open_settings(page, console, "root", "namespaces")
    payments = row(page, "namespaces", "payments")
    if page.locator(payments).count():
        page.click(f"{payments} button.edit")
    else:   # no row yet: named in the form for another namespace
        page.fill("#ns-other", "payments")
        page.click("#ns-other-edit")
    page.select_option("#ns-level", "error")
    page.click("#namespace-save")
    page.wait_for_selector(f"{payments} td.level:text-is('error')")
    assert page.inner_text(f"{payments} td.changed").startswith("root via web, ")

    # Each probe writes a warning and an error; once the change is applied, only errors arrive.
    probes = itertools.count()

    def warning_dropped() -> bool:
        i = next(probes)
        write_lines(console.logs["pay-1"], [f"2025-12-01T11:00:{i % 60:02d}.000Z WARNING user=dave probe {i} below",
                                            f"2025-12-01T11:00:{i % 60:02d}.500Z ERROR user=dave probe {i} kept"])
        messages = wait_for(lambda: (m := payments_messages(console)) and f"user=dave probe {i} kept" in m and m,
                            30, f"probe {i} stored")
        return f"user=dave probe {i} below" not in messages
    wait_for(warning_dropped, APPLIED_WITHIN, "the warning dropped")
    last = next(probes) - 1
    messages = payments_messages(console)
    assert messages.count(f"user=dave probe {last} kept") == 1
    assert messages.count(f"user=dave probe {last} below") == 0


def test_shorter_retention_shows_the_dry_run_effect_and_asks_first(page, console):
    open_settings(page, console, "root", "namespaces")
    # The defaults for new namespaces come first; a namespace collector.toml sets is read-only.
    assert page.inner_text("#namespaces tbody tr:first-child td.name .value") == "defaults for new namespaces"
    assert [page.inner_text(f"{row(page, 'namespaces', '*')} td.{c}") for c in ("level", "general", "security")] == [
        "info", "90d", "1y"]
    staging = row(page, "namespaces", "staging")
    assert [page.inner_text(f"{staging} td.{c}") for c in ("level", "general", "security")] == ["info", "7d", "1y"]
    assert page.inner_text(f"{staging} td.name .badge") == "from collector.toml"
    assert page.locator(f"{staging} button.edit").count() == 0
    default = row(page, "namespaces", "default")
    if page.locator(default).count():
        page.click(f"{default} button.edit")
    else:
        page.fill("#ns-other", "default")
        page.click("#ns-other-edit")
    before = api(console).get("/api/v1/settings/namespaces/default").json()
    page.fill("#ns-general", "1d")
    page.click("#namespace-save")
    page.wait_for_selector("#namespace-confirm:not([hidden])")
    dry = put_json(api(console), "/api/v1/settings/namespaces/default?dry_run=1", {"retention": {"general": "1d"}})
    assert dry.status == 200
    removes = dry.json()["effect"]["next_purge_removes"]
    assert removes == 8     # web-1's six and web-2's two lines, from 2025-12-01
    assert page.inner_text("#namespace-effect") == f"The next purge removes {removes} stored events. Save anyway?"
    page.screenshot(path=str(SCREENSHOTS / "settings-namespaces.png"), full_page=True)
    page.click("#namespace-confirm-cancel")   # the events stay: nothing is saved
    assert page.is_hidden("#namespace-confirm")
    assert api(console).get("/api/v1/settings/namespaces/default").json() == before

    # A namespace not listed yet, typed by name; a longer retention is saved without a question.
    page.fill("#ns-other", "billing")
    page.click("#ns-other-edit")
    assert page.inner_text("#namespace-form-title") == "Namespace billing"
    page.select_option("#ns-level", "warning")
    page.fill("#ns-security", "2y")
    page.click("#namespace-save")
    billing = row(page, "namespaces", "billing")
    page.wait_for_selector(billing)
    assert [page.inner_text(f"{billing} td.{c}") for c in ("level", "general", "security")] == ["warning", "90d", "2y"]
    assert page.inner_text(f"{billing} td.changed").startswith("root via web, ")
    assert page.is_hidden("#namespace-confirm") and page.is_hidden("#namespace-form")


def test_create_a_token_on_the_page_use_it_from_the_cli_and_revoke_it(page, console, tmp_path):
    open_settings(page, console, "root", "access")
    # A typed name that is markup: refused with the API's message, shown as text.
    page.fill("#token-name", XSS_IMG)
    page.click("#token-create")
    page.wait_for_selector("#token-form-error:not([hidden])")
    refused = api(console).post_json("/api/v1/settings/tokens", {"name": XSS_IMG, "role": "namespace-auditor",
                                                                 "namespaces": []})
    assert refused.status == 400
    assert page.inner_text("#token-form-error") == refused.json()["error"]
    assert XSS_IMG in refused.json()["error"]
    assert page.locator("#panel-access img").count() == 0 and page.dialogs == []

    page.fill("#token-name", "reader-1")
    page.select_option("#token-role", "namespace-auditor")
    page.fill("#token-namespaces", "payments")
    page.click("#token-create")
    page.wait_for_selector("#token-secret:not([hidden])")
    assert page.is_hidden("#token-form-error")
    secret = page.inner_text("#token-secret-value").strip()
    assert len(secret) >= 20
    reader = row(page, "tokens", "reader-1")
    page.wait_for_selector(reader)
    assert page.inner_text(f"{reader} td.name .value") == "reader-1"
    assert page.inner_text(f"{reader} td.role") == "namespace-auditor"
    assert page.inner_text(f"{reader} td.namespaces") == "payments"
    assert page.inner_text(f"{reader} td.changed").startswith("root via web, ")
    listed = {t["name"]: t for t in api(console).get("/api/v1/settings/tokens").json()["tokens"]}
    assert listed["reader-1"]["role"] == "namespace-auditor"
    assert secret not in json.dumps(listed)   # shown once, never listed
    # Tokens of the tokens file are listed read-only.
    assert page.inner_text(f"{row(page, 'tokens', 'root')} td.name .badge") == "from the tokens file"
    assert page.locator(f"{row(page, 'tokens', 'root')} button.revoke").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "settings-access.png"), full_page=True)

    token_file = tmp_path / "reader.token"
    token_file.write_text(secret + "\n")
    search = ("--collector", console.collector.address, "search", "--format", "json", "--limit", "0",
              "--token-file", str(token_file), "--log-type", "application")
    expected = sorted(e["id"] for e in console.cli_events("--namespace", "payments", "--log-type", "application"))

    def reader_sees_payments() -> bool:
        result = run_cli(*search)
        return result.returncode == 0 and sorted(json.loads(line)["id"] for line in result.stdout.splitlines()
                                                 if line.strip()) == expected
    wait_for(reader_sees_payments, APPLIED_WITHIN, "the new token accepted by the CLI")

    page.click(f"{reader} button.revoke")
    page.wait_for_selector(reader, state="detached")
    assert page.dialogs == ["Revoke the token reader-1? Whoever holds it is refused from now on."]
    refused = wait_for(lambda: (r := run_cli(*search)).returncode != 0 and r, APPLIED_WITHIN,
                       "the revoked token refused")
    assert refused.stdout == ""
    assert "unknown token" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_namespace_admin_neither_sees_nor_changes_another_namespace(page, console, tmp_path):
    root = api(console)
    # An entry for each namespace (payments' level as the test above left it; a longer security
    # retention removes nothing).
    for namespace, body in (("payments", {"levels": "error", "retention": {"security": "2y"}}),
                            ("default", {"retention": {"security": "2y"}})):
        reply = put_json(root, f"/api/v1/settings/namespaces/{namespace}", body)
        assert reply.status == 200, reply.text
    for name, namespace in (("pay-only", "payments"), ("default-only", "default")):
        reply = root.post_json("/api/v1/settings/forwarders", {
            "name": name, "type": "file", "path": str(tmp_path / f"{name}.jsonl"),
            "include": [{"field": "namespace", "pattern": namespace}]})
        assert reply.status == 201, reply.text
    open_settings(page, console, "payadm", "forwarders")
    assert column(page, "forwarders", "name") == ["pay-only"]
    assert page.locator(f"{row(page, 'forwarders', 'pay-only')} button.edit").count() == 1

    page.click("#tab-namespaces")
    page.wait_for_selector("#namespaces tbody tr:not(:has-text('Loading'))")
    names = [n for n in column(page, "namespaces", "name") if n != "defaults for new namespaces"]
    assert names == ["payments"]

    page.click("#tab-access")
    page.wait_for_selector("#tokens tbody tr:not(:has-text('Loading'))")
    assert "root" not in column(page, "tokens", "name")

    # Its own namespace it changes on the page; the change shows who made it.
    page.click("#tab-namespaces")
    payments = row(page, "namespaces", "payments")
    page.click(f"{payments} button.edit")
    page.fill("#ns-security", "3y")   # longer: saved without a question
    page.click("#namespace-save")
    page.wait_for_selector(f"{payments} td.security:text-is('3y')")
    assert page.inner_text(f"{payments} td.changed").startswith("payadm via web, ")

    # Another namespace's settings, with this session and its CSRF token: refused, nothing changes;
    # and its own without the CSRF token: refused too.
    default_before = root.get("/api/v1/settings/namespaces/default").json()
    forwarder_before = root.get("/api/v1/settings/forwarders/default-only").json()
    payments_before = root.get("/api/v1/settings/namespaces/payments").json()
    answers = page.evaluate("""async () => {
        const csrf = document.getElementById("settings").dataset.csrf;
        const send = (method, path, body, withCsrf = true) => fetch(path, {method,
            headers: {"Content-Type": "application/json", ...(withCsrf ? {"X-CSRF-Token": csrf} : {})},
            body: body === undefined ? undefined : JSON.stringify(body)})
            .then(async (r) => [r.status, (await r.json()).error]);
        return [await send("PUT", "/api/v1/settings/namespaces/default", {levels: "emergency"}),
                await send("PUT", "/api/v1/settings/forwarders/default-only", {name: "default-only", type: "console"}),
                await send("DELETE", "/api/v1/settings/forwarders/default-only"),
                await send("PUT", "/api/v1/settings/namespaces/payments", {levels: "debug"}, false)];
    }""")
    assert answers[0] == [403, "namespace-admin 'payadm' may change only its namespaces (payments)"]
    assert answers[1] == answers[2] == [404, "forwarders: no entry 'default-only'"]   # not even seen
    assert answers[3] == [403, "missing or wrong CSRF token (reload the page)"]
    assert root.get("/api/v1/settings/namespaces/default").json() == default_before
    assert root.get("/api/v1/settings/forwarders/default-only").json() == forwarder_before
    assert root.get("/api/v1/settings/namespaces/payments").json() == payments_before


def test_markup_in_a_forwarder_is_text_and_a_failed_test_event_shows_the_error(page, console):
    closed_port = free_port()   # nothing listens there
    reply = api(console).post_json("/api/v1/settings/forwarders", {
        "name": "unreachable", "type": "jsonl", "host": "127.0.0.1", "port": closed_port,
        "log_types": [XSS_SCRIPT], "exclude": [{"field": "user", "pattern": XSS_IMG}]})
    assert reply.status == 201, reply.text
    open_settings(page, console, "root", "forwarders")
    unreachable = row(page, "forwarders", "unreachable")
    assert page.inner_text(f"{unreachable} td.filters") == f"log types {XSS_SCRIPT}; exclude user={XSS_IMG}"
    assert page.locator("#forwarders script, #forwarders img").count() == 0
    page.click(f"{unreachable} button.test")
    page.wait_for_selector("#forwarders-error:not([hidden])")
    again = api(console).post_json("/api/v1/settings/forwarders/unreachable/test", {})
    assert again.status == 502
    assert page.inner_text("#forwarders-error") == (f"unreachable: the test event was not delivered: "
                                                    f"{again.json()['error']}")
    assert page.is_hidden("#forwarders-message")
    assert api(console).request("DELETE", "/api/v1/settings/forwarders/unreachable").status == 200
    assert page.dialogs == []


def test_a_forwarders_state_and_last_error_refresh_on_the_open_page(page, console):
    root = api(console)
    reply = root.post_json("/api/v1/settings/forwarders", {"name": "down", "type": "jsonl", "host": "127.0.0.1",
                                                           "port": free_port(), "enabled": False})
    assert reply.status == 201, reply.text
    open_settings(page, console, "root", "forwarders")
    down = row(page, "forwarders", "down")
    assert page.inner_text(f"{down} td.state") == "disabled"
    assert page.inner_text(f"{down} td.last-error") == "none"
    # Enabled elsewhere (the API): it fails to connect, and the open page shows it, unreloaded.
    # (An answer PUT back as it came: its status keys are ignored.)
    assert put_json(root, "/api/v1/settings/forwarders/down", {**reply.json(), "enabled": True}).status == 200
    page.wait_for_selector(f"{down} td.last-error:not(:text-is('none'))")
    current = root.get("/api/v1/settings/forwarders/down").json()
    assert current["last_error"] and page.inner_text(f"{down} td.last-error").endswith(current["last_error"])
    assert page.inner_text(f"{down} td.state") != "disabled"
    assert root.request("DELETE", "/api/v1/settings/forwarders/down").status == 200


def test_an_auditor_reads_settings_without_change_buttons(page, console):
    open_settings(page, console, "audrey", "forwarders")
    assert "archive" in column(page, "forwarders", "name")
    assert page.locator("#forwarder-add, #forwarders button.edit, #forwarders button.remove").count() == 0
    page.click("#tab-access")
    assert page.locator("#token-form").count() == 0


def test_screenshots_were_written():
    for name in SCREENSHOT_NAMES:
        assert pathlib.Path(SCREENSHOTS / name).stat().st_size > 10_000


def test_settings_page_signs_in_first_and_the_navigation_links_to_it(console):
    anonymous = Http(console.base)
    reply = anonymous.get("/settings")
    assert (reply.status, reply.headers["Location"]) == (302, "/signin?next=%2Fsettings")
    for who in ("root", "audrey", "payadm", "payaud"):
        page = api(console, who).get("/settings")
        assert page.status == 200
        assert '<a href="/settings" id="nav-settings">Settings</a>' in page.text
        assert '<script src="/static/settings.js" defer></script>' in page.text
    # Buttons that change settings only for roles that may change them.
    assert 'id="forwarder-add"' in api(console, "root").get("/settings").text
    assert 'id="forwarder-add"' not in api(console, "audrey").get("/settings").text
    assert 'id="token-form"' not in api(console, "payadm").get("/settings").text


def _table_keys(section: type, prefix: str = "") -> dict[str, typing.Any]:
    """Every key of a config section as collector.toml spells it (flattened sections' keys in
    place, nested tables as `tls.ca`), with its type."""
    keys: dict[str, typing.Any] = {}
    hints = typing.get_type_hints(section, include_extras=True)
    for item in dataclasses.fields(section):
        hint = hints[item.name]
        if typing.get_origin(hint) is typing.Annotated and any(isinstance(m, Flatten) for m in hint.__metadata__):
            keys.update(_table_keys(typing.get_args(hint)[0], prefix))
            continue
        # A table of its own (`tls`, optional); not the items of a list (`include`'s patterns).
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        nested = [t for t in options if dataclasses.is_dataclass(t)]
        if nested:
            keys.update(_table_keys(nested[0], f"{prefix}{item.name}."))
        else:
            keys[prefix + item.name] = hint
    return keys


def _choices(hint: typing.Any) -> tuple[str, ...]:
    """The values of a Literal key, or of a list of Literals (`actions`)."""
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        return _choices(typing.get_args(hint)[0])
    return ()


def test_the_forwarder_form_has_a_field_for_every_key_of_every_forwarder_type(console):
    html = api(console).get("/settings").text
    for section in typing.get_args(ForwarderConfig):
        for key, hint in _table_keys(section).items():
            assert f'name="{key}"' in html, (section.__name__, key)
            for choice in _choices(hint):   # type, protocol, format, framing, actions
                assert f'value="{choice}"' in html, (section.__name__, key, choice)
